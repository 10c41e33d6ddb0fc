"""SupervisedProcess, the supervisor sensor and the simulator_service asset (no stack needed)."""

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from openpipe.config import load_settings
from openpipe.stack.process import group_alive, group_members
from openpipe_dagster.assets.simulator import simulator_service
from openpipe_dagster.resources import SettingsResource
from openpipe_dagster.resources.simulator import SimulatorService
from openpipe_dagster.resources.supervised import SupervisedProcess
from openpipe_dagster.sensors.simulator import simulator_supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_process_is_tracked_and_dead_one_needs_restart(tmp_path: Path) -> None:
    process = SupervisedProcess("sleeper", tmp_path)
    assert process.status().desired == "never-deployed"
    status = process.start(SLEEPER, metadata={"config_hash": "abc"})
    assert status.running and status.metadata == {"config_hash": "abc"}
    assert process.pid_file.read_text().strip() == str(status.pid)
    os.kill(status.pid, signal.SIGKILL)
    assert _wait(lambda: (_reap(status.pid), not process.status().running)[1])
    assert process.status().needs_restart
    assert process.stop() is False
    assert process.status().desired == "stopped" and not process.status().needs_restart


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    process = SupervisedProcess("family", tmp_path)
    status = process.start(["/bin/sh", "-c", "sleep 120 & sleep 120"])
    assert _wait(lambda: len(group_members(status.pid)) >= 2)
    assert process.stop(timeout_s=5) is True
    _reap(status.pid)
    assert not group_alive(status.pid)
    assert not process.pid_file.exists()


def test_reused_pid_is_not_mistaken_for_our_process(tmp_path: Path) -> None:
    process = SupervisedProcess("sleeper", tmp_path)
    status = process.start(SLEEPER)
    state = process.state_file.read_text().replace(
        f'"start_ticks": "{process._read_state()["start_ticks"]}"', '"start_ticks": "1"'
    )
    process.state_file.write_text(state)
    assert not process.status().running
    os.killpg(status.pid, signal.SIGKILL)
    _reap(status.pid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A simulator service on a free port whose Kafka address has nothing listening."""
    monkeypatch.setenv("OPENPIPE__MONITORING__SIMULATOR_PORT", str(_free_port()))
    monkeypatch.setenv("OPENPIPE__KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{_free_port()}")
    service = SimulatorService(state_dir=str(tmp_path), start_timeout_s=60)
    yield service, SettingsResource()
    service.stop()


def _evaluate(service: SimulatorService, settings: SettingsResource):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"simulator": service, "settings_resource": settings}
        )
        return simulator_supervisor(context)


def test_supervisor_deploys_restarts_and_respects_stop(isolated) -> None:
    service, settings = isolated
    first = _evaluate(service, settings)
    assert first.run_requests[0].run_key.startswith("deploy-")
    process = service._process()
    running = process.start(SLEEPER, metadata={"config_hash": settings.settings.fingerprint()})
    assert "is running config" in _evaluate(service, settings).skip_reason.skip_message
    os.kill(running.pid, signal.SIGKILL)
    assert _wait(lambda: (_reap(running.pid), not process.status().running)[1])
    restart = _evaluate(service, settings)
    # restarted in the sensor itself (no queued run), and recorded as a materialization
    assert not restart.run_requests
    event = restart.asset_events[0]
    assert event.asset_key == dg.AssetKey("simulator_service")
    assert event.metadata["previous_pid"].value == running.pid
    now = service.status()
    assert now.running and now.pid == event.metadata["pid"].value != running.pid
    service.stop()
    assert "stopped on purpose" in _evaluate(service, settings).skip_reason.skip_message


def test_supervisor_redeploys_on_config_change(isolated) -> None:
    service, settings = isolated
    running = service._process().start(SLEEPER, metadata={"config_hash": "old"})
    request = _evaluate(service, settings).run_requests[0]
    assert request.run_key == f"config-{running.pid}-{settings.settings.fingerprint()}"
    assert request.tags["dagster/priority"] == "10"


def test_materialization_deploys_a_simulator_that_waits_for_kafka(isolated) -> None:
    service, settings = isolated
    result = dg.materialize(
        [simulator_service],
        resources={"simulator": service, "settings_resource": settings},
        selection=[simulator_service],
    )
    assert result.success
    metadata = result.asset_materializations_for_node("simulator_service")[0].metadata
    assert metadata["config_hash"].value == load_settings().fingerprint()
    url = metadata["dashboard_url"].value
    status = service.status()
    assert status.running and metadata["pid"].value == status.pid
    # Kafka is down: live, not ready, and still running (retrying, not exiting or spinning).
    assert httpx.get(f"{url}/health/live").status_code == 200
    assert _wait(lambda: "cannot reach" in httpx.get(f"{url}/health/ready").json()["kafka"])
    time.sleep(3)
    assert httpx.get(f"{url}/health/ready").status_code == 503
    assert service.status().running
    assert "Kafka not ready (attempt" in Path(status.log_file).read_text()


def test_where_the_simulator_runs_on_its_own_dagster_leaves_it_alone(
    isolated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENPIPE__DAGSTER__LAUNCH_SIMULATOR", "false")
    service, _ = isolated
    settings = SettingsResource()
    result = _evaluate(service, settings)
    assert not result.run_requests and "launch_simulator is false" in (
        result.skip_reason.skip_message
    )
    with pytest.raises(dg.Failure, match="launch_simulator is false"):
        dg.materialize(
            [simulator_service], resources={"simulator": service, "settings_resource": settings}
        )
    assert service.status().desired == "never-deployed"
