"""Unit tests: migration files and the DDL built for both storage paths."""

from datetime import date

import pytest

from openpipe.storage import migrations

TIME_SERIES = {
    "wearable_readings": "event_time",
    "restaurant_orders": "event_time",
    "gps_points": "event_time",
    "health_metrics_1min": "window_start",
    "health_metrics_10min": "window_start",
    "health_alerts": "window_start",
}
DESIGN_TABLES = {*TIME_SERIES, "dead_letters", "sink_offsets"}


def _all_sql() -> str:
    return "\n".join(migration.sql for migration in migrations.list_migrations())


def test_migrations_are_numbered_in_order():
    versions = [migration.version for migration in migrations.list_migrations()]
    assert versions == sorted(versions) and versions[0] == 1


def test_migrations_create_every_design_table():
    assert set(migrations.created_tables(_all_sql())) >= DESIGN_TABLES


def test_time_series_tables_carry_the_partition_marker():
    found = {t.table: t.column for t in migrations.time_partitioned_tables(_all_sql())}
    assert TIME_SERIES.items() <= found.items()
    assert "dead_letters" not in found and "sink_offsets" not in found


def test_every_time_partitioned_table_in_any_migration_keys_on_its_time_column():
    sql = _all_sql()
    for target in migrations.time_partitioned_tables(sql):
        start = sql.index(f"CREATE TABLE IF NOT EXISTS {target.table} (")
        body = sql[start : sql.index(";", start)]
        assert target.column in body[body.index("PRIMARY KEY (") :].split(")")[0], target


def _code(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def test_native_render_partitions_by_range_on_the_time_column():
    raw = migrations.list_migrations()[0].sql
    native = _code(migrations.render_migration(raw, migrations.NATIVE))
    assert ") PARTITION BY RANGE (event_time);" in native
    assert "time_partitioned" not in native


def test_timescaledb_render_leaves_plain_tables():
    raw = migrations.list_migrations()[0].sql
    rendered = _code(migrations.render_migration(raw, migrations.TIMESCALEDB))
    assert "PARTITION BY" not in rendered and "time_partitioned" not in rendered


@pytest.mark.parametrize("table,column", sorted(TIME_SERIES.items()))
def test_every_unique_key_includes_the_time_column(table, column):
    sql = _all_sql()
    start = sql.index(f"CREATE TABLE IF NOT EXISTS {table} (")
    body = sql[start : sql.index(";", start)]
    key = body[body.index("PRIMARY KEY (") :].split(")")[0]
    assert column in key


def test_hypertable_sql_uses_by_range_and_retention_from_config():
    statements = migrations.hypertable_sql(
        migrations.TimePartitioning("wearable_readings", "event_time"),
        chunk_interval_hours=24,
        retention_days=30,
        timescaledb_version=(2, 17),
    )
    assert statements == [
        "SELECT create_hypertable('wearable_readings', by_range('event_time', "
        "INTERVAL '24 hours'), if_not_exists => TRUE)",
        "SELECT add_retention_policy('wearable_readings', drop_after => INTERVAL '30 days', "
        "if_not_exists => TRUE)",
    ]


def test_hypertable_sql_falls_back_to_the_legacy_signature_before_2_13():
    create, _ = migrations.hypertable_sql(
        migrations.TimePartitioning("gps_points", "event_time"),
        chunk_interval_hours=6,
        retention_days=7,
        timescaledb_version=(2, 11),
    )
    assert create == (
        "SELECT create_hypertable('gps_points', 'event_time', "
        "chunk_time_interval => INTERVAL '6 hours', if_not_exists => TRUE)"
    )


def test_parse_version_reads_major_minor():
    assert migrations.parse_version("2.17.2") == (2, 17)
    with pytest.raises(migrations.MigrationError):
        migrations.parse_version("dev")


def test_grants_are_select_only():
    assert migrations.grant_sql(["gps_points"], "openpipe_reader") == [
        "REVOKE ALL ON TABLE gps_points FROM openpipe_reader",
        "GRANT SELECT ON TABLE gps_points TO openpipe_reader",
    ]


def test_identifiers_are_checked():
    with pytest.raises(migrations.MigrationError):
        migrations.grant_sql(["gps_points; DROP TABLE x"], "openpipe_reader")


def test_daily_partition_ddl_covers_one_utc_day():
    assert migrations.create_partition_sql("gps_points", date(2025, 3, 9)) == (
        "CREATE TABLE IF NOT EXISTS gps_points_p20250309 PARTITION OF gps_points "
        "FOR VALUES FROM ('2025-03-09T00:00:00+00:00') TO ('2025-03-10T00:00:00+00:00')"
    )


def test_days_ahead_includes_today():
    assert migrations.days_ahead(date(2025, 12, 31), 2) == [
        date(2025, 12, 31),
        date(2026, 1, 1),
        date(2026, 1, 2),
    ]


def test_expired_partitions_are_those_wholly_before_the_retention_window():
    names = [
        "gps_points_p20250101",
        "gps_points_p20250129",
        "gps_points_p20250130",
        "gps_points_p20250131",
        "gps_points_default",
        "other_p20240101",
    ]
    expired = migrations.expired_partitions(
        "gps_points", names, date(2025, 3, 1), retention_days=30
    )
    # Jan 30 ends on Jan 31, inside the 30 days before Mar 1: kept.
    assert expired == ["gps_points_p20250101", "gps_points_p20250129"]


def test_migration_file_names_are_validated(tmp_path):
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="NNNN"):
        migrations.list_migrations(tmp_path)
