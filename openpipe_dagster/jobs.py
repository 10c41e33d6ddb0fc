"""Every job of the code location, named for what it runs, built from one `Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from openpipe.config import Settings
from openpipe.sinks import SINKS, SinkSpec
from openpipe_dagster.runs import SINK_TAG, WORKLOAD_TAGS

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

HOURLY_ROLLUPS = ["health_metrics_hourly", "restaurant_sales_hourly", "gps_vehicle_stats_hourly"]

simulator_service_job = dg.define_asset_job(
    name="simulator_service_job",
    selection=["simulator_service"],
    description="(Re)deploy the simulator process.",
)
deploy_flink_health_job = dg.define_asset_job(
    "deploy_flink_health_job",
    selection=["flink_health_job"],
    description="Deploy, keep or replace the Flink health-window job.",
)
database_schema_job = dg.define_asset_job(
    name="database_schema_job",
    selection=["database_schema"],
    description="Apply pending migrations from sql/migrations/.",
)
alert_report_job = dg.define_asset_job(
    "alert_report_job",
    selection=["alert_report"],
    description="Write the HTML alert report for a batch of alerts.",
)


def sink_job(spec: SinkSpec, settings: Settings) -> UnresolvedAssetJobDefinition:
    """The job a lag sensor launches: a session of just this sink's asset.

    A session whose worker died is retried by the instance's run retries (dagster.yaml)
    within seconds; the lag sensor, which counts a queued retry as in flight, covers the
    rest. Op retries cover transient errors inside a session.
    """
    return dg.define_asset_job(
        name=f"{spec.table}_sink_job",
        selection=[spec.table],
        # A session whose step failed (e.g. offsets above the high watermark) already had
        # its op retries; only a dead worker is worth a new run.
        tags={
            SINK_TAG: spec.table,
            **WORKLOAD_TAGS,
            "dagster/retry_on_asset_or_op_failure": "false",
            # Ahead of reports and rollups in the run queue: a sink without its session
            # stalls the pipeline (docs/chaos.md, defect 2).
            "dagster/priority": "10",
        },
        description=(
            f"Drain {spec.topic_key} into {spec.table}: a session of micro-batches "
            f"(pipeline.session_seconds, {settings.pipeline.session_seconds:.0f} s here)."
        ),
    )


def catch_up_config(tables) -> dict:
    """Run config that makes each sink asset drain to the high watermarks and end."""
    return {"ops": {table: {"config": {"catch_up": True}} for table in tables}}


def build_jobs(
    settings: Settings, checks: list[dg.AssetChecksDefinition]
) -> dict[str, UnresolvedAssetJobDefinition]:
    """Every job by name: services, schema, sinks, partition upkeep, rollups, reports, checks."""
    retries = {"dagster/max_retries": str(settings.dagster.run_retries)}
    jobs = [
        simulator_service_job,
        deploy_flink_health_job,
        database_schema_job,
        alert_report_job,
        *(sink_job(spec, settings) for spec in SINKS.values()),
        dg.define_asset_job(
            name="sinks_safety_net_job",
            selection=[*SINKS, "dead_letters"],
            tags={**retries, **WORKLOAD_TAGS},
            config=catch_up_config(SINKS),
            description=(
                "Drains sinks up to their high watermarks once and ends, in case a sensor "
                "missed lag (e.g. daemon restart); sinks with a session in flight are skipped."
            ),
        ),
        dg.define_asset_job(
            name="partition_maintenance_job", selection=["table_partitions"], tags=retries
        ),
        dg.define_asset_job(
            "hourly_rollups_job",
            selection=HOURLY_ROLLUPS,
            tags=retries,
            description="Recompute the hourly rollups (health metrics, restaurant sales, GPS).",
        ),
        dg.define_asset_job(
            "daily_alert_rollup_job",
            selection=["alert_rollup_daily"],
            tags=retries,
            description="Recompute the daily alert rollup.",
        ),
        dg.define_asset_job(
            "data_quality_checks_job",
            selection=dg.AssetSelection.checks(*checks),
            description="Fault detection, sink freshness and bad-data rate checks.",
        ),
    ]
    return {job.name: job for job in jobs}
