"""SimulatorService: deploys, stops and reports on the simulator process for Dagster."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import dagster as dg
import httpx
from pydantic import Field

from openpipe.config import REPO_ROOT, Settings
from openpipe.stack.process import STATE_DIR
from openpipe_dagster.resources.supervised import ProcessStatus, SupervisedProcess

PROCESS_NAME = "simulator"


@dataclass(frozen=True, slots=True)
class SimulatorDeployment:
    """A running simulator as recorded at deploy time, plus its live readiness."""

    pid: int | None
    running: bool
    desired: str
    config_hash: str | None
    dashboard_url: str | None
    log_file: str
    ready: bool

    @property
    def needs_restart(self) -> bool:
        return self.desired == "running" and not self.running


class SimulatorService(dg.ConfigurableResource):
    """The simulator as one supervised process group (pid, log, state under state_dir)."""

    config_path: str | None = None
    state_dir: str = str(STATE_DIR / PROCESS_NAME)
    seed: int = 0
    extra_args: list[str] = Field(default_factory=list)
    start_timeout_s: float = 60.0

    def _process(self) -> SupervisedProcess:
        return SupervisedProcess(PROCESS_NAME, REPO_ROOT / self.state_dir)

    def argv(self) -> list[str]:
        """The command line the service runs."""
        argv = [sys.executable, "-m", "simulator", "--seed", str(self.seed)]
        if self.config_path:
            argv += ["--config", self.config_path]
        return argv + list(self.extra_args)

    def deploy(self, settings: Settings, *, wait: bool = True) -> SimulatorDeployment:
        """(Re)start the simulator with `settings`; by default wait until its dashboard answers."""
        monitoring = settings.monitoring
        url = f"http://{monitoring.host}:{monitoring.simulator_port}"
        process = self._process()
        process.start(
            self.argv(),
            metadata={"config_hash": settings.fingerprint(), "dashboard_url": url},
            cwd=REPO_ROOT,
        )
        if not wait:
            return self.status()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if not process.status().running:
                raise dg.Failure(
                    "the simulator exited while starting; last log lines:\n" + process.log_tail(),
                    metadata={"log_file": str(process.log_file)},
                )
            if _get(f"{url}/health/live") is not None:
                return self.status()
            time.sleep(0.5)
        raise dg.Failure(
            f"the simulator's dashboard at {url} did not answer within "
            f"{self.start_timeout_s:.0f} s; last log lines:\n{process.log_tail()}"
        )

    def stop(self) -> bool:
        """Stop the simulator and mark it as not wanted (the supervisor leaves it down)."""
        return self._process().stop()

    def status(self) -> SimulatorDeployment:
        """The deployed simulator: alive or not, its config hash, and readiness (Kafka)."""
        process = self._process()
        state: ProcessStatus = process.status()
        url = state.metadata.get("dashboard_url")
        ready = False
        if state.running and url:
            response = _get(f"{url}/health/ready")
            ready = response is not None and response.status_code == 200
        return SimulatorDeployment(
            pid=state.pid,
            running=state.running,
            desired=state.desired,
            config_hash=state.metadata.get("config_hash"),
            dashboard_url=url,
            log_file=str(process.log_file),
            ready=ready,
        )


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
