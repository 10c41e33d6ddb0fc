"""The TimescaleDB compression DDL of the raw hypertables (pure SQL builders)."""

import pytest

from openpipe.storage import migrations


def test_compression_settings_segment_by_device_and_order_by_time_descending():
    assert migrations.compression_settings_sql(
        "wearable_readings", segment_by="device_id", order_by="event_time"
    ) == (
        "ALTER TABLE wearable_readings SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'device_id', "
        "timescaledb.compress_orderby = 'event_time DESC')"
    )


def test_compression_policy_is_replaced_with_compress_after_days():
    assert migrations.compression_policy_sql("gps_points", 7) == [
        "SELECT remove_compression_policy('gps_points', if_exists => TRUE)",
        "SELECT add_compression_policy('gps_points', compress_after => INTERVAL '7 days', "
        "if_not_exists => TRUE)",
    ]


def test_compression_sql_refuses_names_that_are_not_plain_identifiers():
    with pytest.raises(migrations.MigrationError):
        migrations.compression_settings_sql("x; DROP", segment_by="device_id", order_by="t")
    with pytest.raises(migrations.MigrationError):
        migrations.compression_settings_sql("t", segment_by="device_id'--", order_by="t")
