"""Migrations on TimescaleDB: an empty database, and one at the previous version."""

from __future__ import annotations

import pytest

from openpipe.sinks import SINKS
from openpipe.storage import migrations
from openpipe.storage.schema import apply_migrations, pending_migrations

pytestmark = pytest.mark.integration
RAW = sorted(spec.table for spec in SINKS.values() if spec.family)


def hypertables(conn) -> set[str]:
    return {
        name
        for (name,) in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
        )
    }


def jobs(conn, proc: str) -> dict[str, dict]:
    """Each hypertable's policy job config for a policy (policy_retention, policy_compression)."""
    return dict(
        conn.execute(
            "SELECT hypertable_name, config FROM timescaledb_information.jobs WHERE proc_name = %s",
            (proc,),
        ).fetchall()
    )


def segment_by(conn) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT hypertable::text, segmentby FROM "
            "timescaledb_information.hypertable_compression_settings"
        ).fetchall()
    )


def test_migrations_on_an_empty_database_make_every_time_series_table_a_hypertable(
    tsdb, connect_to
):
    with connect_to(tsdb) as conn:
        report = apply_migrations(conn, tsdb)
        assert report.storage == migrations.TIMESCALEDB
        assert report.timescaledb_version
        assert hypertables(conn) == set(report.time_partitioned)
        assert set(RAW) <= set(report.time_partitioned)
        retention = jobs(conn, "policy_retention")
        assert set(retention) == set(report.time_partitioned)
        assert {c["drop_after"] for c in retention.values()} == {
            f"{tsdb.database.retention_days} days"
        }
        assert pending_migrations(conn) == []
        # Re-applying is a no-op: same hypertables, one policy of each kind per table.
        again = apply_migrations(conn, tsdb)
        assert again.applied == [] and len(jobs(conn, "policy_retention")) == len(retention)


def test_raw_hypertables_get_a_compression_policy_segmented_by_device(tsdb, connect_to):
    with connect_to(tsdb) as conn:
        report = apply_migrations(conn, tsdb)
        compression = jobs(conn, "policy_compression")
        assert sorted(compression) == RAW
        after = f"{tsdb.database.compress_after_days} days"
        assert {c["compress_after"] for c in compression.values()} == {after}
        assert {t: s for t, s in segment_by(conn).items() if t in RAW} == dict.fromkeys(
            RAW, "device_id"
        )
        assert report.compression == {t: after for t in RAW}


def test_a_changed_compress_after_days_replaces_the_policy(tsdb, connect_to):
    with connect_to(tsdb) as conn:
        apply_migrations(conn, tsdb)
        later = tsdb.model_copy(
            update={"database": tsdb.database.model_copy(update={"compress_after_days": 3})}
        )
        apply_migrations(conn, later)
        compression = jobs(conn, "policy_compression")
    assert {c["compress_after"] for c in compression.values()} == {"3 days"}
    assert len(compression) == len(RAW)


def test_migrations_on_a_database_at_the_previous_version(tsdb, connect_to, monkeypatch):
    every = migrations.list_migrations()
    with connect_to(tsdb) as conn:
        # The previous version: every migration but the newest, rows already written.
        monkeypatch.setattr(migrations, "list_migrations", lambda *a: every[:-1])
        apply_migrations(conn, tsdb)
        conn.execute(
            "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
            "heart_rate_bpm, kafka_topic, kafka_partition, kafka_offset) VALUES "
            "(gen_random_uuid(), now() - interval '1 hour', 'wear-1', 'p-1', 'heart_rate', 72.5, "
            "'virtual-wearables', 0, 0)"
        )
        monkeypatch.setattr(migrations, "list_migrations", lambda *a: every)
        assert pending_migrations(conn) == [f"{every[-1].version:04d}_{every[-1].name}"]
        report = apply_migrations(conn, tsdb)
        assert report.applied == [f"{every[-1].version:04d}_{every[-1].name}"]
        assert pending_migrations(conn) == []
        assert hypertables(conn) == set(report.time_partitioned)
        assert conn.execute("SELECT heart_rate_bpm FROM wearable_readings").fetchall() == [(72.5,)]
        assert sorted(jobs(conn, "policy_compression")) == RAW
