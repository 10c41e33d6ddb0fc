"""Time-partitioned rollups computed with SQL from the raw and health tables (docs/architecture.md §7).

Each asset replaces its partitions' rows in one transaction (openpipe.rollups). With
`BackfillPolicy.single_run()` a backfill of any range is one run, one DELETE and one INSERT.
"""

import dagster as dg

from openpipe import rollups
from openpipe.config import Settings
from openpipe_dagster.checks.stream_batch import STREAM_BATCH_CHECK, stream_batch_result
from openpipe_dagster.partitions import daily_partitions, hourly_partitions
from openpipe_dagster.resources import PostgresResource, SettingsResource

GROUP = "rollups"
OWNERS = ["team:analytics"]


def _columns(*columns: tuple[str, str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=text) for name, kind, text in columns]
    )


COLUMN_SCHEMAS: dict[str, dg.TableSchema] = {
    "health_metrics_hourly": _columns(
        ("hour_start", "timestamptz", "UTC hour (partition key)"),
        ("patient_id", "string", ""),
        ("metric", "string", "heart_rate, bp_systolic, bp_diastolic or blood_sugar"),
        ("reading_count", "int", "valid readings in the hour"),
        ("avg_value", "float", ""),
        ("min_value", "float", ""),
        ("max_value", "float", ""),
        ("p95_value", "float", "95th percentile (continuous)"),
        ("computed_at", "timestamptz", "when this partition was last computed"),
    ),
    "alert_rollup_daily": _columns(
        ("day_start", "timestamptz", "UTC day of alert_time (partition key)"),
        ("patient_id", "string", ""),
        ("alert_type", "string", ""),
        ("alert_count", "int", ""),
        ("first_alert_at", "timestamptz", ""),
        ("last_alert_at", "timestamptz", ""),
        ("max_observed_value", "float", "highest window average that alerted"),
        ("computed_at", "timestamptz", ""),
    ),
    "restaurant_sales_hourly": _columns(
        ("hour_start", "timestamptz", "UTC hour (partition key)"),
        ("restaurant_id", "string", ""),
        ("city", "string", ""),
        ("order_count", "int", "orders placed in the hour"),
        ("paid_orders", "int", "orders whose payment became paid in the hour"),
        ("paid_revenue_inr", "float", "total_inr of those orders"),
        ("failed_payments", "int", "orders with a failed payment in the hour"),
        ("top_dishes", "json", "[{dish_code, quantity}] by units in orders placed"),
        ("computed_at", "timestamptz", ""),
    ),
    "gps_vehicle_stats_hourly": _columns(
        ("hour_start", "timestamptz", "UTC hour (partition key)"),
        ("vehicle_id", "string", ""),
        ("route_id", "string", "route of the vehicle's last point in the hour"),
        ("city", "string", ""),
        ("point_count", "int", ""),
        ("distance_km", "float", "haversine distance between consecutive points"),
        ("avg_speed_kmh", "float", ""),
        ("max_speed_kmh", "float", ""),
        ("stop_count", "int", "moving -> stopped transitions (speed <= stop_speed_kmh)"),
        ("computed_at", "timestamptz", ""),
    ),
}

_DESCRIPTIONS = {
    "health_metrics_hourly": (
        "Per patient, metric and UTC hour: count, average, min, max and p95 of the valid "
        "wearable readings (blood pressure as bp_systolic / bp_diastolic). Checked against the "
        "stream's 1- and 10-minute windows."
    ),
    "alert_rollup_daily": (
        "Per patient, alert type and UTC day: number of health alerts, first and last alert "
        "time and the highest observed window average."
    ),
    "restaurant_sales_hourly": (
        "Per restaurant and UTC hour: orders placed, orders paid and their revenue (INR), "
        "failed payments and the top dishes by units ordered."
    ),
    "gps_vehicle_stats_hourly": (
        "Per vehicle and UTC hour: GPS points, haversine distance (km), average and maximum "
        "speed and the number of stops."
    ),
}


def build_rollup_asset(
    rollup: rollups.Rollup,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    check_specs: list[dg.AssetCheckSpec] | None = None,
) -> dg.AssetsDefinition:
    """The partitioned asset that recomputes `rollup` for the run's partition range."""

    @dg.asset(
        name=rollup.table,
        group_name=GROUP,
        kinds={"postgres", "sql"},
        owners=OWNERS,
        deps=[dg.AssetKey(rollup.source), dg.AssetKey("database_schema")],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=check_specs,
        metadata={
            "dagster/column_schema": COLUMN_SCHEMAS[rollup.table],
            "dagster/table_name": rollup.table,
            "sql": dg.MetadataValue.path(str(rollup.sql_path)),
        },
        description=_DESCRIPTIONS[rollup.table]
        + " Idempotent: a run replaces its partitions' rows in one transaction.",
    )
    def _rollup(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ):
        settings = settings_resource.settings
        window = context.partition_time_window
        with postgres.connect(autocommit=True) as conn:
            result = rollups.replace_window(conn, rollup, settings, window.start, window.end)
            checks = (
                [stream_batch_result(conn, settings, window.start, window.end)]
                if check_specs
                else []
            )
        context.log.info(
            "%s [%s, %s): %d rows replaced by %d in %.2fs",
            rollup.table,
            window.start,
            window.end,
            result.rows_deleted,
            result.rows_written,
            result.seconds,
        )
        yield dg.MaterializeResult(
            metadata={
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "partitions": len(context.partition_keys),
                "rows_deleted": result.rows_deleted,
                "rows_written": result.rows_written,
                "seconds": round(result.seconds, 3),
            }
        )
        yield from checks

    return _rollup


def build_rollup_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The four rollups: three hourly, one daily, partitioned from analytics.partitions_start."""
    hourly, daily = hourly_partitions(settings), daily_partitions(settings)
    return [
        build_rollup_asset(
            rollups.ROLLUPS["health_metrics_hourly"], hourly, check_specs=[STREAM_BATCH_CHECK]
        ),
        build_rollup_asset(rollups.ROLLUPS["restaurant_sales_hourly"], hourly),
        build_rollup_asset(rollups.ROLLUPS["gps_vehicle_stats_hourly"], hourly),
        build_rollup_asset(rollups.ROLLUPS["alert_rollup_daily"], daily),
    ]
