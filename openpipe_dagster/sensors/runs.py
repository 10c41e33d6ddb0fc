"""run_worker_watchdog: a STARTED run whose worker process is gone is marked failed.

The code server fails a run when the worker process it started for it exits without
finishing it. Dagster does that check in one thread of the code server, and that thread
ends for good on its first database error (`_cleanup_thread` in dagster/_grpc/server.py):
after a PostgreSQL restart, each run whose worker died meanwhile stayed STARTED, and each
sink waited behind its dead session for ever (docs/chaos.md, chaos-1127192041). This
sensor repeats the check from the run's own record: the worker's pid from its "Started
process for run" event, and that process's start time, so a reused pid does not pass for
the worker. It needs the workers on its own machine, as the default run launcher puts
them (the code server's children, locally and in compose); with another launcher it
does nothing.
"""

from __future__ import annotations

import re

import dagster as dg

from openpipe.stack.process import process_start

_STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)")
#: A worker starts within this many seconds of its run's start time.
START_SLACK_S = 120


def started_process_pid(message: str) -> int | None:
    """The pid in a worker's "Started process for run (pid: N)." event, else None."""
    match = _STARTED_PROCESS.match(message)
    return int(match.group(1)) if match else None


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's worker logged when it started, or None before it did."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        pid = started_process_pid(record.message or "")
        if pid is not None:
            return pid
    return None


def worker_alive(pid: int, run_started: float | None) -> bool:
    """The process exists, is no zombie, and began around the run's start (not a reused pid)."""
    began = process_start(pid)
    return began is not None and (run_started is None or began >= run_started - START_SLACK_S)


def fail_runs_without_worker(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every STARTED run whose worker is gone; their ids."""
    failed = []
    for record in instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    ):
        run = record.dagster_run
        pid = worker_pid(instance, run.run_id)
        if pid is None or worker_alive(pid, record.start_time):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue  # it finished between the two reads
        instance.report_engine_event(
            f"Run worker process {pid} is gone and the run never ended; marking it failed "
            "(run_worker_watchdog).",
            current,
        )
        instance.report_run_failed(current)
        failed.append(run.run_id)
    return failed


@dg.sensor(
    name="run_worker_watchdog",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed a STARTED run whose worker process is gone (the code server's own "
        "check stops after a database outage), so its sink or job can start again."
    ),
)
def run_worker_watchdog(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance = context.instance
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return dg.SkipReason("run workers are not on this machine (not the default launcher)")
    failed = fail_runs_without_worker(instance)
    if not failed:
        return dg.SkipReason("every STARTED run has its worker")
    return dg.SkipReason(f"marked failed, worker gone: {', '.join(r[:8] for r in failed)}")
