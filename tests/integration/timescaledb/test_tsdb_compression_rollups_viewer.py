"""Compression of old raw chunks, rollups over hypertables, and what the viewer shows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from openpipe.rollups import ROLLUPS, replace_window
from sql_viewer.main import create_app

pytestmark = pytest.mark.integration
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def insert_readings(conn, start: datetime, count: int, *, devices: int = 5) -> None:
    conn.execute(
        "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
        "heart_rate_bpm, kafka_topic, kafka_partition, kafka_offset) "
        "SELECT gen_random_uuid(), %s + n * interval '1 second', 'wear-' || (n %% %s), "
        "'patient-' || (n %% %s), 'heart_rate', 60 + (n %% 50) + 0.5, 'itest', 0, n "
        "FROM generate_series(0, %s - 1) n",
        (start, devices, devices, count),
    )


def run_policy_alone(conn, job: int) -> None:
    """Run policy job `job` now, with TimescaleDB's own scheduler kept off it.

    A new database's scheduler starts its jobs at once; two compressions of one chunk at
    the same time make one of them fail ("Failed to convert '1' chunks"), so the
    job is paused and any run of it in flight is waited out before it runs here.
    """
    conn.execute("SELECT alter_job(%s, scheduled => false)", (job,))
    for _ in range(300):
        status = conn.execute(
            "SELECT job_status FROM timescaledb_information.job_stats WHERE job_id = %s",
            (job,),
        ).fetchone()
        if status is None or status[0] != "Running":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"TimescaleDB job {job} was still running after 30 s")
    warnings: list[str] = []
    conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary))
    try:
        conn.execute("CALL run_job(%s)", (job,))
    except psycopg.Error as exc:
        raise AssertionError(f"job {job} failed: {exc}; its warnings: {warnings}") from exc


def test_the_compression_policy_compresses_old_chunks_and_queries_still_see_every_row(
    migrated, connect_to
):
    old = datetime.now(UTC) - timedelta(days=migrated.database.compress_after_days + 3)
    with connect_to(migrated) as conn:
        insert_readings(conn, old, 5000)
        insert_readings(conn, datetime.now(UTC) - timedelta(hours=1), 100)
        job = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' AND hypertable_name = 'wearable_readings'"
        ).fetchone()[0]
        run_policy_alone(conn, job)
        compressed, total, before, after = conn.execute(
            "SELECT number_compressed_chunks, total_chunks, before_compression_total_bytes, "
            "after_compression_total_bytes FROM hypertable_compression_stats('wearable_readings')"
        ).fetchone()
        count = conn.execute("SELECT count(*) FROM wearable_readings").fetchone()[0]
        # A late duplicate of an old event still makes no second row in a compressed chunk.
        event_id, event_time = conn.execute(
            "SELECT event_id, event_time FROM wearable_readings ORDER BY event_time LIMIT 1"
        ).fetchone()
        conn.execute(
            "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
            "kafka_topic, kafka_partition, kafka_offset) VALUES (%s, %s, 'wear-0', 'p', "
            "'heart_rate', 'itest', 0, 1) ON CONFLICT DO NOTHING",
            (event_id, event_time),
        )
        again = conn.execute("SELECT count(*) FROM wearable_readings").fetchone()[0]
    assert compressed >= 1 and total > compressed, "only chunks past compress_after_days"
    assert before > after > 0
    assert count == again == 5100


def test_rollups_over_hypertables_replace_their_window(migrated, connect_to):
    rollup = ROLLUPS["health_metrics_hourly"]
    with connect_to(migrated) as conn:
        insert_readings(conn, HOUR, 3600)
        first = replace_window(conn, rollup, migrated, HOUR, HOUR + timedelta(hours=1))
        again = replace_window(conn, rollup, migrated, HOUR, HOUR + timedelta(hours=1))
        readings = conn.execute(
            "SELECT sum(reading_count) FROM health_metrics_hourly WHERE hour_start = %s",
            (HOUR,),
        ).fetchone()[0]
        is_hypertable = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'health_metrics_hourly'"
        ).fetchone()[0]
    assert first.rows_written == again.rows_written == again.rows_deleted > 0
    assert readings == 3600
    assert is_hypertable == 1


@pytest.fixture
def analyzed_readings(migrated, connect_to):
    """The migrated database with 2,000 readings in wearable_readings, analyzed."""
    with connect_to(migrated) as conn:
        insert_readings(conn, HOUR, 2000)
        conn.execute("ANALYZE wearable_readings")
    return migrated


def test_viewer_shows_timescaledb_row_counts_chunks_and_compression(analyzed_readings, connect_to):
    migrated = analyzed_readings
    with connect_to(migrated) as conn:
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()[0]
        hypertables = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        ).fetchone()[0]
    with TestClient(create_app(migrated)) as client:
        listing = client.get("/api/tables").json()
        detail = client.get("/api/tables/wearable_readings").json()
    assert listing["storage"]["label"] == f"TimescaleDB {version}, {hypertables} hypertables"
    assert detail["storage"]["mode"] == "timescaledb"
    assert detail["kind"] == "hypertable"
    assert detail["estimated_rows"] == 2000  # approximate_row_count(), not reltuples (-1)
    assert detail["size_bytes"] > 0
    assert detail["partitioning"]["chunks"] >= 1
    assert detail["partitioning"]["compression"]["enabled"] is True
    assert detail["order_column"] == "event_time"
    assert detail["latest_rows"]["row_count"] > 0


def test_viewer_lists_hypertables_while_a_chunk_is_locked(analyzed_readings, connect_to):
    # As while a chunk is compressed: its figures would wait, so the list falls back to
    # the catalogue's statistics and still names the hypertable, its chunks and settings.
    migrated = analyzed_readings
    with connect_to(migrated) as conn:
        chunk = conn.execute(
            "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'wearable_readings' LIMIT 1"
        ).fetchone()[0]
    with connect_to(migrated) as holder, TestClient(create_app(migrated)) as client:
        holder.autocommit = False
        holder.execute(f"LOCK TABLE {chunk} IN ACCESS EXCLUSIVE MODE")
        response = client.get("/api/tables")
    assert response.status_code == 200, response.text
    readings = {t["name"]: t for t in response.json()["tables"]}["wearable_readings"]
    assert readings["kind"] == "hypertable"
    assert readings["size_estimated"] is True
    assert readings["estimated_rows"] == 2000  # the chunks' reltuples after ANALYZE
    assert readings["partitioning"]["chunks"] >= 1
    assert readings["partitioning"]["time_column"] == "event_time"
    assert readings["partitioning"]["compression"] == {
        "enabled": True,
        "compressed_chunks": None,
        "before_bytes": None,
        "after_bytes": None,
    }
