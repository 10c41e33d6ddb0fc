"""The supervisor: redeploys the simulator when it died, was never started, or has old config."""

import dagster as dg

from openpipe_dagster.assets.simulator import simulator_service
from openpipe_dagster.jobs import simulator_service_job
from openpipe_dagster.resources import SettingsResource, SimulatorService
from openpipe_dagster.runs import IN_FLIGHT_STATUSES

SUPERVISOR_INTERVAL_S = 10
NOT_LAUNCHED = (
    "dagster.launch_simulator is false: the simulator runs on its own (as in docker-compose)"
)


@dg.sensor(
    name="simulator_supervisor",
    job=simulator_service_job,
    minimum_interval_seconds=SUPERVISOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Keeps the simulator alive: restarts it at once when it died, and requests a "
        "simulator_service run when it was never deployed or its config changed."
    ),
)
def simulator_supervisor(
    context: dg.SensorEvaluationContext,
    simulator: SimulatorService,
    settings_resource: SettingsResource,
) -> dg.SensorResult:
    settings = settings_resource.settings
    if not settings.dagster.launch_simulator:
        return dg.SensorResult(skip_reason=NOT_LAUNCHED)
    status = simulator.status()
    fingerprint = settings.fingerprint()
    if status.desired == "stopped":
        return dg.SensorResult(
            skip_reason="the simulator was stopped on purpose; materialize simulator_service"
        )
    if status.desired == "running" and not status.running:
        # A crash: restart right here rather than queue a run behind busy sinks, so the
        # simulator is back within one sensor interval; record it as a materialization.
        context.log.warning(f"simulator pid {status.pid} is not running; restarting it")
        started = simulator.deploy(settings, wait=False)
        return dg.SensorResult(
            asset_events=[
                dg.AssetMaterialization(
                    asset_key=simulator_service.key,
                    description=f"restarted by simulator_supervisor after pid {status.pid} died",
                    metadata={
                        "pid": started.pid,
                        "previous_pid": status.pid,
                        "config_hash": started.config_hash,
                        "dashboard_url": dg.MetadataValue.url(started.dashboard_url or ""),
                        "log_file": dg.MetadataValue.path(started.log_file),
                    },
                )
            ]
        )
    in_flight = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=simulator_service_job.name, statuses=IN_FLIGHT_STATUSES),
        limit=1,
    )
    if in_flight:
        return dg.SensorResult(
            skip_reason=f"deploy run {in_flight[0].dagster_run.run_id} is in flight"
        )
    if status.desired == "never-deployed":
        reason, key = "never deployed", f"deploy-{fingerprint}"
    elif status.config_hash != fingerprint:
        reason = f"config changed ({status.config_hash} -> {fingerprint})"
        key = f"config-{status.pid}-{fingerprint}"
    else:
        return dg.SensorResult(
            skip_reason=f"simulator pid {status.pid} is running config {fingerprint}"
        )
    context.log.info(f"requesting a simulator deploy: {reason}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=key, tags={"openpipe/reason": reason, "dagster/priority": "10"})
        ]
    )
