"""The code location loads, with the asset graph it always had: keys, groups, lineage, jobs,
sensors, schedules and checks (asset_graph.json beside this file), schemas and partitions."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.assets.topics import topic_asset_key
from openpipe_dagster.definitions import defs

ROLLUPS = (
    "health_metrics_hourly",
    "alert_rollup_daily",
    "restaurant_sales_hourly",
    "gps_vehicle_stats_hourly",
)


SNAPSHOT = Path(__file__).with_name("asset_graph.json")


def _graph():
    return defs.get_repository_def().asset_graph


def snapshot(definitions: dg.Definitions) -> dict:
    """What stored runs, materializations and cursors depend on, in a comparable form."""
    repo = definitions.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "parents": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "materializable": node.is_materializable,
        }
    return {
        "assets": assets,
        "checks": sorted(
            f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys
        ),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(s.name for s in repo.schedule_defs),
    }


def test_definitions_load():
    assert isinstance(defs, dg.Definitions)
    assert dg.AssetKey("kafka_topics") in _graph().get_all_asset_keys()


def test_asset_graph_keys_groups_lineage_and_names_are_unchanged():
    assert snapshot(defs) == json.loads(SNAPSHOT.read_text())


def test_nothing_in_the_package_reads_settings_at_import():
    root = Path(__file__).parents[3] / "openpipe_dagster"
    readers = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "load_settings(" in path.read_text()
        and path.name != "definitions.py"
        and path.parent.name != "resources"
    ]
    assert readers == [], "build from the Settings that definitions.py passes in"


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
