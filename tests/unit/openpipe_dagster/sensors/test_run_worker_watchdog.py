"""run_worker_watchdog: STARTED runs whose worker process is gone are failed, others kept."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest

from openpipe_dagster.sensors.runs import (
    fail_runs_without_worker,
    run_worker_watchdog,
    worker_alive,
)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _started_run(instance: dg.DagsterInstance, pid: int | None) -> str:
    run = instance.add_run(
        dg.DagsterRun(
            job_name="sink_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
    )
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run)
    return run.run_id


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_run_whose_worker_exited_or_is_a_zombie_is_failed(instance) -> None:
    exited, zombie = _sleeper(), _sleeper()
    exited.kill()
    exited.wait()
    zombie.kill()  # not waited for: a zombie until reaped, as under a code server that stopped reaping
    time.sleep(0.5)
    runs = [_started_run(instance, exited.pid), _started_run(instance, zombie.pid)]
    try:
        assert sorted(fail_runs_without_worker(instance)) == sorted(runs)
    finally:
        zombie.wait()
    for run_id in runs:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(run_id)]
        assert any("is gone and the run never ended" in m for m in messages), messages
    assert fail_runs_without_worker(instance) == []  # once


def test_runs_with_a_live_worker_or_none_logged_yet_are_kept(instance) -> None:
    live = _sleeper()
    try:
        runs = [_started_run(instance, live.pid), _started_run(instance, None)]
        assert fail_runs_without_worker(instance) == []
        for run_id in runs:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    finally:
        live.kill()
        live.wait()


def test_a_reused_pid_is_not_taken_for_the_worker() -> None:
    now = time.time()
    fresh = _sleeper()
    try:
        assert worker_alive(fresh.pid, now - 60)
    finally:
        fresh.kill()
        fresh.wait()
    assert not worker_alive(1, now)  # init began long before a run that started now
    assert worker_alive(1, None)


def test_the_sensor_does_nothing_when_workers_are_not_on_this_machine(instance) -> None:
    gone = _sleeper()
    gone.kill()
    gone.wait()
    run_id = _started_run(instance, gone.pid)
    # The ephemeral instance launches runs in-process, not as the default launcher does.
    result = run_worker_watchdog(dg.build_sensor_context(instance=instance))
    assert "not on this machine" in result.skip_message
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
