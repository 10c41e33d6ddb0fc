"""Unit tests: the write statements and Dagster-side helpers of the sinks."""

from openpipe.sinks import SINKS, partition_lag
from openpipe.sinks.writer import _insert_statement
from openpipe_dagster.sensors.sinks import sink_run_key


def test_raw_sinks_insert_do_nothing_on_their_key():
    text = _insert_statement(SINKS["gps_points"]).as_string(None)
    assert text.startswith('INSERT INTO "gps_points" (')
    assert 'FROM "_stage_gps_points" ON CONFLICT ("event_id", "event_time") DO NOTHING' in text


def test_flink_sinks_upsert_only_when_values_change():
    text = _insert_statement(SINKS["health_alerts"]).as_string(None)
    assert 'ON CONFLICT ("device_id", "alert_type", "window_start") DO UPDATE SET' in text
    assert '"observed_value" = EXCLUDED."observed_value"' in text
    assert "IS DISTINCT FROM" in text
    assert '"device_id" = EXCLUDED' not in text, "key columns are never updated"


def test_partition_lag_counts_unstored_partitions_from_zero():
    assert partition_lag({0: 5, 1: 9}, {0: 7, 1: 9, 2: 4}) == {0: 2, 1: 0, 2: 4}


def test_run_key_changes_with_offsets_and_watermarks_only():
    base = sink_run_key("gps_points", {0: 1}, {0: 5, 1: 2})
    assert base == sink_run_key("gps_points", {0: 1, 1: 0}, {1: 2, 0: 5})
    assert base != sink_run_key("gps_points", {0: 2}, {0: 5, 1: 2})
    assert base != sink_run_key("gps_points", {0: 1}, {0: 6, 1: 2})
    assert base.startswith("gps_points-")
