"""Supervisor: redeploy the health-window job when it is gone, ended, or on an old config."""

import time

import dagster as dg

from flink_jobs.health_windows import plan_fingerprint
from openpipe_dagster.jobs import deploy_flink_health_job
from openpipe_dagster.resources import FlinkService, SettingsResource
from openpipe_dagster.resources.flink import FlinkServiceError
from openpipe_dagster.runs import IN_FLIGHT_STATUSES

#: Ticks run this often, so a dead job is back well within a minute.
SUPERVISOR_INTERVAL_S = 10
#: A failed redeploy is retried with a fresh run key after this long.
RETRY_AFTER_S = 120


def needs_deploy(flink: FlinkService, config_hash: str, plan_hash: str) -> str | None:
    """Why the job needs a deploy run, or None when one up-to-date job is active."""
    active = flink.active_jobs()
    if not active:
        last = flink.status()
        return f"no active job (last {last.job_id} {last.state})" if last else "no job yet"
    if len(active) > 1:
        return f"{len(active)} active jobs; exactly one is allowed"
    job = active[0]
    if (job.config_hash, job.plan_hash) != (config_hash, plan_hash):
        return f"job {job.job_id} runs config {job.config_hash}; the current one is {config_hash}"
    return None


@dg.sensor(
    job=deploy_flink_health_job,
    minimum_interval_seconds=SUPERVISOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Keeps exactly one health-window job RUNNING with the current config: requests a "
        "deploy run when the job is missing, ended, duplicated or on an old config."
    ),
)
def flink_health_job_supervisor(
    context: dg.SensorEvaluationContext, flink: FlinkService, settings_resource: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    settings = settings_resource.settings
    config_hash = settings.fingerprint()
    try:
        reason = needs_deploy(flink, config_hash, plan_fingerprint(settings))
    except FlinkServiceError as exc:
        return dg.SkipReason(f"cannot see the Flink cluster: {exc}")
    if reason is None:
        return dg.SkipReason("one job RUNNING (or recovering) with the current config")
    in_flight = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=deploy_flink_health_job.name, statuses=IN_FLIGHT_STATUSES),
        limit=1,
    )
    if in_flight:
        return dg.SkipReason(f"{reason}; deploy run {in_flight[0].run_id} is already under way")
    last = flink.ledger().get("job_id", "none")
    bucket = int(time.time() // RETRY_AFTER_S)
    context.log.info("requesting a deploy: %s", reason)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{config_hash}:{last}:{bucket}",
                # Ahead of queued micro-batch runs: a dead job stalls every window.
                tags={"openpipe/reason": reason[:200], "dagster/priority": "10"},
            )
        ]
    )
