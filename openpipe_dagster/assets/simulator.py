"""The simulator_service asset: materializing it (re)deploys the simulator."""

import dagster as dg

from openpipe_dagster.resources import SettingsResource, SimulatorService


@dg.asset(
    name="simulator_service",
    group_name="services",
    deps=["kafka_topics"],
    kinds={"python", "kafka"},
    owners=["team:simulator"],
    description=(
        "The virtual device simulator (wearables, restaurant POS, GPS) producing to Kafka. "
        "Materializing stops any running instance and starts one with the current config."
    ),
)
def simulator_service(
    context: dg.AssetExecutionContext,
    simulator: SimulatorService,
    settings_resource: SettingsResource,
) -> dg.MaterializeResult:
    settings = settings_resource.settings
    if not settings.dagster.launch_simulator:
        raise dg.Failure(
            description="dagster.launch_simulator is false: this deployment runs the simulator "
            "on its own (docker-compose's simulator service), so Dagster does not start a "
            "second one. Restart that service instead, or set "
            "OPENPIPE__DAGSTER__LAUNCH_SIMULATOR=true where Dagster should launch it.",
            allow_retries=False,
        )
    deployment = simulator.deploy(settings)
    context.log.info(
        f"simulator running as pid {deployment.pid} with config {deployment.config_hash}; "
        f"dashboard {deployment.dashboard_url}"
    )
    devices = settings.devices
    return dg.MaterializeResult(
        metadata={
            "pid": deployment.pid,
            "config_hash": deployment.config_hash,
            "dashboard_url": dg.MetadataValue.url(deployment.dashboard_url),
            "log_file": dg.MetadataValue.path(deployment.log_file),
            "kafka_ready": deployment.ready,
            "devices": {
                "wearables": devices.wearables.count,
                "restaurants": devices.restaurants.count,
                "gps": devices.gps.count,
            },
        }
    )
