"""The supervisor: redeploys the simulator when it died, was never started, or has old config."""

import dagster as dg

from openpipe_dagster.infrastructure.resources import SettingsResource
from openpipe_dagster.simulator.assets import simulator_service_job
from openpipe_dagster.simulator.resources import SimulatorService

SUPERVISOR_INTERVAL_S = 10
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    name="simulator_supervisor",
    job=simulator_service_job,
    minimum_interval_seconds=SUPERVISOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the simulator alive: redeploys it when it is wanted but not running.",
)
def simulator_supervisor(
    context: dg.SensorEvaluationContext,
    simulator: SimulatorService,
    settings_resource: SettingsResource,
) -> dg.RunRequest | dg.SkipReason:
    in_flight = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=simulator_service_job.name, statuses=_IN_FLIGHT), limit=1
    )
    if in_flight:
        return dg.SkipReason(f"deploy run {in_flight[0].dagster_run.run_id} is in flight")
    status = simulator.status()
    fingerprint = settings_resource.settings.fingerprint()
    if status.desired == "stopped":
        return dg.SkipReason("the simulator was stopped on purpose; materialize to start it")
    if status.desired == "never-deployed":
        reason, key = "never deployed", f"deploy-{fingerprint}"
    elif not status.running:
        reason, key = f"pid {status.pid} is not running", f"restart-{status.pid}"
    elif status.config_hash != fingerprint:
        reason = f"config changed ({status.config_hash} -> {fingerprint})"
        key = f"config-{status.pid}-{fingerprint}"
    else:
        return dg.SkipReason(f"simulator pid {status.pid} is running config {fingerprint}")
    context.log.info(f"redeploying the simulator: {reason}")
    return dg.RunRequest(run_key=key, tags={"openpipe/reason": reason})
