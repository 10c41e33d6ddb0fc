"""The `flink_health_job` asset: materializing it deploys (or keeps, or replaces) the job."""

import dagster as dg

from openpipe_dagster.resources import FlinkService, SettingsResource


@dg.asset(
    group_name="services",
    kinds={"flink", "kafka"},
    owners=["team:streaming"],
    deps=["kafka_topics"],
    description=(
        "The PyFlink health-window job on the Flink cluster: event-time windows and alerts "
        "from virtual-wearables into the health-* topics. Materializing deploys it, keeps it "
        "when it already runs with this config, or replaces it (savepoint, then restore) "
        "when the config changed. Never two at once."
    ),
)
def flink_health_job(
    context: dg.AssetExecutionContext, flink: FlinkService, settings_resource: SettingsResource
) -> dg.MaterializeResult:
    settings = settings_resource.settings
    deployment = flink.deploy(settings)
    job = deployment.job
    context.log.info(
        "Flink job %s %s (state %s, restored from %s, stopped %s)",
        job.job_id,
        deployment.action,
        job.state,
        deployment.restored_from or "nothing",
        ", ".join(deployment.stopped) or "nothing",
    )
    return dg.MaterializeResult(
        metadata={
            "job_id": job.job_id,
            "job_name": job.name,
            "flink_ui": dg.MetadataValue.url(flink.ui_url(job.job_id)),
            "config_hash": job.config_hash,
            "plan_hash": job.plan_hash,
            "state": job.state,
            "action": deployment.action,
            "restored_from": deployment.restored_from or "",
            "stopped_jobs": ", ".join(deployment.stopped),
            "source_topic": settings.kafka.topics.wearables,
            "output_topics": ", ".join(
                (
                    settings.kafka.topics.health_metrics_1min,
                    settings.kafka.topics.health_metrics_10min,
                    settings.kafka.topics.health_alerts,
                )
            ),
        }
    )
