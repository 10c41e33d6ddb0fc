"""FlinkService: submit, find, stop and report the health-window job on a Flink cluster.

Jobs are found by name: `<flink.job_name> [config <hash>, plan <hash>]`. Submission runs
the PyFlink CLI (`flink run -d --python flink_jobs/health_windows.py`); everything else is
the Flink REST API. A small ledger file remembers the last job so a redeploy can restore
from its newest retained checkpoint when the plan is unchanged.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import httpx
import orjson

from flink_jobs import health_windows
from openpipe.config import REPO_ROOT, Settings

TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED", "SUSPENDED"})
_NAME_RE = re.compile(r"^(?P<base>.+) \[config (?P<config>\w+), plan (?P<plan>\w+)\]$")
_JOB_ID_RE = re.compile(r"JobID ([0-9a-f]{32})")
JOB_SCRIPT = REPO_ROOT / "flink_jobs" / "health_windows.py"


class FlinkServiceError(RuntimeError):
    """The Flink cluster refused or failed an operation; the message says what to check."""


@dataclass(frozen=True, slots=True)
class FlinkJob:
    """One health-window job as the cluster reports it."""

    job_id: str
    name: str
    state: str
    start_time_ms: int
    config_hash: str
    plan_hash: str

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Deployment:
    """The outcome of `FlinkService.deploy`."""

    job: FlinkJob
    action: str  # kept | started | replaced
    restored_from: str | None
    stopped: tuple[str, ...]


class FlinkService(dg.ConfigurableResource):
    """The health-window job on a standalone Flink cluster (REST API + PyFlink CLI)."""

    rest_url: str
    job_name: str
    # Where the user's browser opens the Flink UI (settings.flink.ui_url); empty: rest_url.
    # In compose Dagster reaches the cluster as flink-jobmanager, which no browser resolves.
    ui_base_url: str = ""
    connector_jar: str = str(health_windows.CONNECTOR_JAR)
    state_dir: str = str(health_windows.STATE_DIR)
    submit_timeout_s: float = 240.0
    savepoint_timeout_s: float = 120.0

    # --- REST reads -------------------------------------------------------------------
    def _get(self, path: str) -> Any:
        try:
            response = httpx.get(f"{self.rest_url}{path}", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise FlinkServiceError(
                f"Flink REST {self.rest_url}{path} failed ({exc}); is the cluster up "
                "(`uv run openpipe status`)?"
            ) from exc
        return response.json()

    def jobs(self) -> list[FlinkJob]:
        """Every job on the cluster whose name marks it as ours, newest first."""
        found = []
        for item in self._get("/jobs/overview")["jobs"]:
            match = _NAME_RE.match(item["name"])
            if match and match["base"] == self.job_name:
                found.append(
                    FlinkJob(
                        item["jid"],
                        item["name"],
                        item["state"],
                        item["start-time"],
                        match["config"],
                        match["plan"],
                    )
                )
        return sorted(found, key=lambda job: job.start_time_ms, reverse=True)

    def active_jobs(self) -> list[FlinkJob]:
        """Our jobs that are not in a terminal state (running, restarting, starting...)."""
        return [job for job in self.jobs() if job.active]

    def status(self) -> FlinkJob | None:
        """The newest active job, else the newest job the cluster remembers, else None."""
        jobs = self.jobs()
        return next((job for job in jobs if job.active), jobs[0] if jobs else None)

    def ui_url(self, job_id: str) -> str:
        """A link to the job in the Flink web UI, at the address a browser opens."""
        return f"{self.ui_base_url or self.rest_url}/#/job/running/{job_id}/overview"

    def cluster_checkpoint_dir(self) -> Path | None:
        """The cluster's own checkpoint directory, when this machine can read it.

        Compose mounts the cluster's volume at the same path in the code server; a remote
        cluster keeps it out of reach, and then only REST knows the checkpoints.
        """
        try:
            config = {e["key"]: e["value"] for e in self._get("/jobmanager/config")}
        except FlinkServiceError:
            return None
        uri = config.get("execution.checkpointing.dir") or config.get("state.checkpoints.dir")
        if not uri or urlparse(uri).scheme not in ("file", ""):
            return None
        path = Path(urlparse(uri).path)
        return path if path.is_dir() else None

    def latest_checkpoint(self, job_id: str) -> str | None:
        """The newest retained checkpoint or savepoint of a job, from REST or from disk."""
        try:
            latest = self._get(f"/jobs/{job_id}/checkpoints").get("latest") or {}
        except FlinkServiceError:
            latest = {}
        candidates = [
            (entry["latest_ack_timestamp"], entry["external_path"])
            for entry in (latest.get("completed"), latest.get("savepoint"))
            if entry and entry.get("external_path") and not entry.get("discarded")
        ]
        if candidates:
            return max(candidates)[1]
        # The cluster forgot the job (a JobManager restart): look where it wrote them.
        checkpoints = self.cluster_checkpoint_dir()
        if checkpoints is None:
            return None
        on_disk = sorted(
            (checkpoints / job_id).glob("chk-*/_metadata"),
            key=lambda p: int(p.parent.name.split("-")[1]),
        )
        return str(on_disk[-1].parent) if on_disk else None

    # --- actions ----------------------------------------------------------------------
    def submit(self, restore_from: str | None = None, script: Path = JOB_SCRIPT) -> str:
        """Submit the job (or another PyFlink `script`) detached; returns the new job id."""
        from openpipe.stack.flink import CONF_DIR, flink_home

        endpoint = urlparse(self.rest_url)
        if not Path(self.connector_jar).exists():
            raise FlinkServiceError(
                f"Kafka connector jar {self.connector_jar} is missing; run `uv run openpipe up` "
                "(it fetches jvm/pom.xml artefacts into .openpipe/jars)."
            )
        command = [str(flink_home() / "bin" / "flink"), "run", "-d"]
        command += ["-m", f"{endpoint.hostname}:{endpoint.port}"]
        if restore_from:
            command += ["-s", restore_from, "--allowNonRestoredState"]
        command += ["--python", str(script), "--jarfile", self.connector_jar]
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
        }
        if CONF_DIR.exists():
            env["FLINK_CONF_DIR"] = str(CONF_DIR)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=self.submit_timeout_s,
            check=False,
        )
        match = _JOB_ID_RE.search(result.stdout + result.stderr)
        if result.returncode != 0 or not match:
            # Java frames hide the Python traceback and the "Caused by" chain: drop them.
            lines = (result.stdout + result.stderr).strip().splitlines()
            said = [line for line in lines if not line.lstrip().startswith(("at ", "... "))]
            tail = "\n".join(said[-30:])
            raise FlinkServiceError(
                f"`flink run` exited {result.returncode} without a job id; last output:\n{tail}"
            )
        return match[1]

    def wait_for_state(self, job_id: str, states: set[str], timeout_s: float = 90.0) -> FlinkJob:
        """Poll until the job reaches one of `states`; raise if it ends up elsewhere."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = next((j for j in self.jobs() if j.job_id == job_id), None)
            if job and job.state in states:
                return job
            if job and job.state in TERMINAL_STATES - states:
                raise FlinkServiceError(
                    f"job {job_id} is {job.state}; see {self.ui_url(job_id)} for the exception"
                )
            if time.monotonic() > deadline:
                state = job.state if job else "unknown to the cluster"
                raise FlinkServiceError(
                    f"job {job_id} is still {state} after {timeout_s:.0f} s; waiting for {states}"
                )
            time.sleep(1)

    def all_tasks_running(self, job_id: str, timeout_s: float = 180.0) -> int:
        """Wait until every task of the job runs; returns when the last one started (Flink's
        own timestamp, epoch ms). A task whose attempt is being redeployed has none yet."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stamps = []
            for vertex in self._get(f"/jobs/{job_id}")["vertices"]:
                times = self._get(f"/jobs/{job_id}/vertices/{vertex['id']}/subtasktimes")
                stamps += [s["timestamps"].get("RUNNING", 0) for s in times["subtasks"]]
            if stamps and all(stamps):
                return max(stamps)
            time.sleep(0.5)
        raise FlinkServiceError(f"job {job_id}: not every task RUNNING after {timeout_s:.0f} s")

    def cancel(self, job_id: str) -> None:
        """Cancel a job without a savepoint (its retained checkpoints stay on disk)."""
        try:
            httpx.patch(f"{self.rest_url}/jobs/{job_id}?mode=cancel", timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            raise FlinkServiceError(f"cancelling Flink job {job_id} failed: {exc}") from exc
        self.wait_for_state(job_id, {"CANCELED", "FAILED", "FINISHED"}, timeout_s=60)

    def stop_with_savepoint(self, job_id: str) -> str | None:
        """Stop a job with a savepoint; returns its path, or None when stopping failed."""
        # No targetDirectory: the cluster writes to its own execution.checkpointing.savepoint-dir
        # (a path of this machine would not exist on a remote or containerised cluster).
        try:
            response = httpx.post(
                f"{self.rest_url}/jobs/{job_id}/stop",
                json={"drain": False},
                timeout=10,
            )
            response.raise_for_status()
            trigger = response.json()["request-id"]
        except httpx.HTTPError:
            return None
        deadline = time.monotonic() + self.savepoint_timeout_s
        while time.monotonic() < deadline:
            result = self._get(f"/jobs/{job_id}/savepoints/{trigger}")
            if result["status"]["id"] == "COMPLETED":
                operation = result.get("operation") or {}
                return operation.get("location")
            time.sleep(1)
        return None

    # --- ledger and lock --------------------------------------------------------------
    @property
    def _ledger_path(self) -> Path:
        return Path(self.state_dir) / "health_job.json"

    def ledger(self) -> dict:
        """What the last deploy recorded: job id, config and plan hashes, savepoint."""
        try:
            return orjson.loads(self._ledger_path.read_bytes())
        except FileNotFoundError:
            return {}

    def _write_ledger(self, entry: dict) -> None:
        self._ledger_path.parent.mkdir(parents=True, exist_ok=True)
        staging = self._ledger_path.with_suffix(".tmp")
        staging.write_bytes(orjson.dumps(entry))
        staging.replace(self._ledger_path)

    @contextmanager
    def _deploy_lock(self) -> Iterator[None]:
        # Two deploys at once (a sensor run and a manual one) must not start two jobs.
        path = Path(self.state_dir) / "health_job.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- the one entry point for assets and sensors -------------------------------------
    def deploy(self, settings: Settings) -> Deployment:
        """Make exactly one job run with `settings`: keep it, start it, or replace the old one."""
        config, plan = settings.fingerprint(), health_windows.plan_fingerprint(settings)
        with self._deploy_lock():
            active = self.active_jobs()
            matching = [j for j in active if j.config_hash == config and j.plan_hash == plan]
            if len(active) == 1 and matching:
                return Deployment(matching[0], "kept", None, ())
            restore: str | None = None
            stopped = []
            for job in active:
                savepoint = self.stop_with_savepoint(job.job_id)
                if savepoint is None:
                    self.cancel(job.job_id)
                    savepoint = self.latest_checkpoint(job.job_id)
                stopped.append(job.job_id)
                if job.plan_hash == plan and savepoint and restore is None:
                    restore = savepoint
            last = self.ledger()
            if restore is None and last.get("plan") == plan and last.get("job_id"):
                restore = self.latest_checkpoint(last["job_id"])
            job_id = self.submit(restore)
            self._write_ledger({"job_id": job_id, "config": config, "plan": plan})
            job = self.wait_for_state(job_id, {"RUNNING"})
            if job.config_hash != config:
                raise FlinkServiceError(
                    f"job {job_id} started with config {job.config_hash}, expected {config}: "
                    "the `flink run` environment loads different settings (OPENPIPE_* vars?)"
                )
            return Deployment(job, "replaced" if stopped else "started", restore, tuple(stopped))
