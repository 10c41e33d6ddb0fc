"""`openpipe down` during a sink session: no process and no port left behind, the session
ended after its transaction in flight, and `openpipe up` brings everything back.

It stops the shared stack, so conftest.py moves it after every other test of the run.
"""

import os
import subprocess
import sys
import time

import pytest

from openpipe.config import REPO_ROOT
from openpipe.stack import components
from openpipe.stack import dagster as stack_dagster
from openpipe.stack.process import command_line, listening_pids, port_open

pytestmark = pytest.mark.integration
SINK = "wearable_readings"
CLI = (sys.executable, "-m", "openpipe.stack.cli")


def ports(settings) -> dict[str, int]:
    m = settings.monitoring
    return {
        "dagster": m.dagster_port,
        "simulator": m.simulator_port,
        "viewer": m.viewer_port,
        "flink": settings.flink.rest_port,
        "kafka": settings.kafka.broker_port,
        "postgres": settings.database.port,
    }


#: What the stack's processes run (other tests' dry-run simulators and pytest are not it).
STACK_MARKS = (
    "dagster-daemon",
    "dagster-webserver",
    "dagster api grpc",
    "code-server start",
    "multiprocessing.spawn",  # Dagster run workers, sink sessions among them
    "-m sql_viewer",
    "-m simulator --seed",  # the supervised simulator (tests run theirs with --dry-run)
    str(REPO_ROOT / ".openpipe"),  # PostgreSQL, Kafka and Flink run from the state dir
)


def our_processes() -> dict[int, str]:
    """Processes of this checkout's stack (this checkout's venv or state directory)."""
    venv = str(REPO_ROOT / ".venv")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        cmd = command_line(int(entry))
        ours = venv in cmd or str(REPO_ROOT / ".openpipe") in cmd
        if ours and any(mark in cmd for mark in STACK_MARKS) and "--dry-run" not in cmd:
            found[int(entry)] = cmd
    return found


def running_session(instance, timeout_s: float = 240):
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in instance.get_run_records(
            filters=dg.RunsFilter(
                tags={"openpipe/sink": SINK}, statuses=[dg.DagsterRunStatus.STARTED]
            ),
            limit=5,
        ):
            logs = instance.all_logs(record.dagster_run.run_id)
            if any(
                e.dagster_event and e.dagster_event.event_type_value == "STEP_START" for e in logs
            ):
                return record.dagster_run.run_id
        time.sleep(2)
    pytest.fail(f"no session of {SINK} running within {timeout_s:.0f} s")


def test_down_during_a_session_leaves_nothing_behind_and_up_restores(stack):
    settings = stack
    stack_dagster.prepare()
    os.environ.update(stack_dagster.environment(settings))
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run_id = running_session(instance)
    try:
        down = subprocess.run(
            [*CLI, "down"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, down.stderr[-2000:]
        lines = down.stdout.splitlines()
        assert lines[0] == "stopped dagster-daemon", lines  # first: nothing is relaunched
        open_ports = {
            name: port for name, port in ports(settings).items() if port_open("127.0.0.1", port)
        }
        assert open_ports == {}, f"ports still open after down: {open_ports}"
        left = our_processes()
        assert left == {}, f"processes left after down: {left}"
        assert listening_pids(settings.monitoring.simulator_port) == []
    finally:
        up = subprocess.run(
            [*CLI, "up"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
        )
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS, "the session ended on its own"
        last = [
            e.asset_materialization
            for e in instance.all_logs(run_id)
            if e.asset_materialization is not None
        ][-1]
    assert last.metadata["stopped_on_request"].value is True
    for component in components.ALL:
        ok, detail = component.ready(settings)
        assert ok, f"{component.name} after up: {detail}"
