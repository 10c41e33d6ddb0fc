"""The services Dagster deploys (simulator, Flink job): deployed, deploying or down, for `status`."""

from __future__ import annotations

import httpx

from openpipe.config import Settings
from openpipe.stack import dagster

DEPLOYED, DEPLOYING, DOWN = "deployed", "deploying", "down"
# Flink job states on the way to RUNNING (or back to it after a failure).
_FLINK_STARTING = {"CREATED", "INITIALIZING", "RESTARTING", "RECONCILING"}
_IN_PROGRESS_RUNS = """
{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) {
    ... on Runs { results { runId jobName assetSelection { path } } } } }
"""


def deploy_runs_in_progress(settings: Settings, asset: str) -> list[str]:
    """Ids of Dagster runs, queued or running, that materialize `asset` (a (re)deploy)."""
    try:
        results = dagster.graphql(settings, _IN_PROGRESS_RUNS)["runsOrError"]["results"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return []
    return [
        run["runId"]
        for run in results
        if asset in run["jobName"]
        or any(key["path"] == [asset] for key in run.get("assetSelection") or [])
    ]


def flink_job_state(jobs: list[dict], job_name: str) -> tuple[str, str]:
    """Judge the Flink REST /jobs/overview list: our job running with all tasks, starting, or none."""
    ours = [j for j in jobs if j.get("name", "").split(" [", 1)[0] == job_name]
    running = [j for j in ours if j.get("state") == "RUNNING"]
    for job in running:
        tasks = job.get("tasks", {})
        if tasks.get("running", 0) == tasks.get("total", 0):
            return DEPLOYED, (
                f"job {job['jid'][:8]} RUNNING, {tasks.get('total', 0)} tasks, supervised by Dagster"
            )
    starting = running + [j for j in ours if j.get("state") in _FLINK_STARTING]
    if starting:
        job = starting[0]
        tasks = job.get("tasks", {})
        return DEPLOYING, (
            f"job {job['jid'][:8]} {job['state']}, "
            f"{tasks.get('running', 0)}/{tasks.get('total', 0)} tasks running"
        )
    ended = sorted({j.get("state", "?") for j in ours})
    return DOWN, f"no running job named {job_name!r}" + (
        f" (earlier ones: {', '.join(ended)})" if ended else ""
    )


def flink_job(settings: Settings) -> tuple[str, str]:
    """State of the health-window job on the Flink cluster, or its deploy run in Dagster."""
    try:
        response = httpx.get(f"{settings.flink.rest_url}/jobs/overview", timeout=3)
        response.raise_for_status()
        state, detail = flink_job_state(response.json().get("jobs", []), settings.flink.job_name)
    except httpx.HTTPError as exc:
        state, detail = DOWN, f"Flink REST API not answering ({type(exc).__name__})"
    return _with_deploy_run(settings, "flink_health_job", state, detail)


def simulator(settings: Settings, pid: int | None) -> tuple[str, str]:
    """The simulator process (its pid) and its /health/ready, or its deploy run in Dagster."""
    if not settings.dagster.launch_simulator:
        return DOWN, "not launched by Dagster (dagster.launch_simulator: false)"
    url = f"http://{settings.monitoring.host}:{settings.monitoring.simulator_port}/health/ready"
    state, detail = DOWN, "no simulator process"
    if pid:
        try:
            ok = httpx.get(url, timeout=3).status_code == 200
        except httpx.HTTPError:
            ok = False
        state = DEPLOYED if ok else DEPLOYING
        detail = f"pid {pid}, " + ("ready" if ok else "not ready yet") + ", supervised by Dagster"
    return _with_deploy_run(settings, "simulator_service", state, detail)


def _with_deploy_run(settings: Settings, asset: str, state: str, detail: str) -> tuple[str, str]:
    if state == DEPLOYED:
        return state, detail
    runs = deploy_runs_in_progress(settings, asset)
    if runs:
        return DEPLOYING, f"{detail}; Dagster run {runs[0][:8]} is deploying it"
    return state, detail
