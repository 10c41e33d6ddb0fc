"""The analytics and topics domains load, with groups, schemas, partitions and lineage."""

from __future__ import annotations

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.definitions import defs
from openpipe_dagster.topics.assets import topic_asset_key

ROLLUPS = (
    "health_metrics_hourly",
    "alert_rollup_daily",
    "restaurant_sales_hourly",
    "gps_vehicle_stats_hourly",
)


def _graph():
    return defs.get_repository_def().asset_graph


def test_analytics_definitions_load():
    repo = defs.get_repository_def()
    for name in (
        "hourly_rollups_job",
        "daily_alert_rollup_job",
        "alert_report_job",
        "data_quality_checks_job",
    ):
        assert repo.has_job(name)
    for name in ("alert_report_sensor", "record_pipeline_incidents", "topic_observations"):
        assert repo.has_sensor_def(name)
    assert repo.has_schedule_def("hourly_rollups_after_each_hour")
    assert repo.has_schedule_def("daily_alert_rollup_after_midnight")


def test_every_analytics_asset_has_group_owner_description_and_schema():
    graph = _graph()
    settings = load_settings()
    keys = [dg.AssetKey(n) for n in (*ROLLUPS, "alert_report", "pipeline_incidents")]
    keys += [topic_asset_key(t) for t in settings.kafka.topics.all()]
    for key in keys:
        node = graph.get(key)
        assert node.group_name in {"raw", "stream", "rollups", "reports"}, key
        assert node.owners and node.description, key
        assert isinstance(node.metadata.get("dagster/column_schema"), dg.TableSchema), key


def test_rollups_are_partitioned_and_lineage_reads_end_to_end():
    graph = _graph()
    settings = load_settings()
    assert isinstance(
        graph.get(dg.AssetKey("alert_rollup_daily")).partitions_def, dg.DailyPartitionsDefinition
    )
    for name in ("health_metrics_hourly", "restaurant_sales_hourly", "gps_vehicle_stats_hourly"):
        assert isinstance(
            graph.get(dg.AssetKey(name)).partitions_def, dg.HourlyPartitionsDefinition
        )
    wearables = topic_asset_key(settings.kafka.topics.wearables)
    alerts = topic_asset_key(settings.kafka.topics.health_alerts)
    assert dg.AssetKey("simulator_service") in graph.get(wearables).parent_keys
    assert dg.AssetKey("flink_health_job") in graph.get(alerts).parent_keys
    assert (
        dg.AssetKey("wearable_readings")
        in graph.get(dg.AssetKey("health_metrics_hourly")).parent_keys
    )
    assert dg.AssetKey("alert_rollup_daily") in graph.get(dg.AssetKey("alert_report")).parent_keys
