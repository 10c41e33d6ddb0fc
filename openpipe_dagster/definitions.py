"""The Dagster code location: every definition built from one `Settings` object."""

import dagster as dg

from openpipe.config import Settings, load_settings
from openpipe.sinks import SINKS
from openpipe_dagster import jobs as job_defs
from openpipe_dagster.assets import (
    flink,
    infrastructure,
    reports,
    rollups,
    simulator,
    sinks,
    topics,
)
from openpipe_dagster.checks import build_quality_checks
from openpipe_dagster.resources import build_resources
from openpipe_dagster.schedules import build_schedules
from openpipe_dagster.sensors import flink as flink_sensors
from openpipe_dagster.sensors import infrastructure as infrastructure_sensors
from openpipe_dagster.sensors import reports as report_sensors
from openpipe_dagster.sensors import runs as run_sensors
from openpipe_dagster.sensors import simulator as simulator_sensors
from openpipe_dagster.sensors import sinks as sink_sensors
from openpipe_dagster.sensors import topics as topic_sensors


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, schedules, sensors and resources of the code location."""
    checks = build_quality_checks(settings)
    jobs = job_defs.build_jobs(settings, checks)
    return dg.Definitions(
        assets=[
            infrastructure.kafka_topics,
            infrastructure.database_schema,
            infrastructure.table_partitions,
            *topics.topic_specs(settings),
            simulator.simulator_service,
            flink.flink_health_job,
            *sinks.build_sink_assets(settings).values(),
            sinks.dead_letters,
            *rollups.build_rollup_assets(settings),
            reports.alert_report,
            reports.pipeline_incidents,
        ],
        asset_checks=checks,
        jobs=list(jobs.values()),
        schedules=build_schedules(settings, jobs),
        sensors=[
            infrastructure_sensors.build_schema_sensor(jobs["database_schema_job"]),
            topic_sensors.build_topic_observations_sensor(settings),
            simulator_sensors.simulator_supervisor,
            flink_sensors.flink_health_job_supervisor,
            *(
                sink_sensors.build_sink_sensor(spec, jobs[f"{table}_sink_job"], settings)
                for table, spec in SINKS.items()
            ),
            report_sensors.build_alert_report_sensor(jobs["alert_report_job"], settings),
            report_sensors.record_pipeline_incidents,
            run_sensors.run_worker_watchdog,
        ],
        resources=build_resources(settings),
        # One process per run, not one more per step.
        executor=dg.in_process_executor,
    )


defs = build_definitions(load_settings())
