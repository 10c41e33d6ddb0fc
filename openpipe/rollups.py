"""Time-bucketed rollups of the raw and health tables (SQL in sql/rollups/<table>.sql).

A rollup run covers a window [start, end) of whole buckets (hours or days) and replaces
the window's rows in one transaction: delete, then insert from the source table. Replays
and backfills of any range therefore give the same rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

from openpipe.config import REPO_ROOT, Settings
from openpipe.storage import migrations

log = logging.getLogger(__name__)
ROLLUP_SQL_DIR = REPO_ROOT / "sql" / "rollups"
# How far back the SQL looks for an order's earlier payment events and a vehicle's
# previous point, so a window's results do not depend on where the window starts.
ORDER_LOOKBACK = timedelta(days=1)
GPS_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class Rollup:
    """One rollup table: its bucket column, bucket size and the table it is computed from."""

    table: str
    bucket_column: str
    bucket: timedelta
    source: str

    @property
    def sql_path(self) -> Path:
        """sql/rollups/<table>.sql: the INSERT ... SELECT for a window."""
        return ROLLUP_SQL_DIR / f"{self.table}.sql"

    @cached_property
    def insert_sql(self) -> str:
        """The INSERT ... SELECT for a window, with %(start)s / %(end)s parameters."""
        return self.sql_path.read_text(encoding="utf-8")

    def delete_sql(self) -> sql.Composed:
        """DELETE of the window's rows (the first half of the replace)."""
        return sql.SQL("DELETE FROM {} WHERE {} >= %(start)s AND {} < %(end)s").format(
            sql.Identifier(self.table),
            sql.Identifier(self.bucket_column),
            sql.Identifier(self.bucket_column),
        )


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ROLLUPS: dict[str, Rollup] = {
    r.table: r
    for r in (
        Rollup("health_metrics_hourly", "hour_start", HOUR, "wearable_readings"),
        Rollup("alert_rollup_daily", "day_start", DAY, "health_alerts"),
        Rollup("restaurant_sales_hourly", "hour_start", HOUR, "restaurant_orders"),
        Rollup("gps_vehicle_stats_hourly", "hour_start", HOUR, "gps_points"),
    )
}


@dataclass(frozen=True, slots=True)
class RollupResult:
    table: str
    start: datetime
    end: datetime
    rows_deleted: int
    rows_written: int
    seconds: float


def rollup_params(
    rollup: Rollup, settings: Settings, start: datetime, end: datetime
) -> dict[str, object]:
    """The named parameters of a rollup's SQL for the window [start, end)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("rollup windows need timezone-aware datetimes (UTC)")
    if end <= start:
        raise ValueError(f"empty rollup window: start {start} is not before end {end}")
    return {
        "start": start,
        "end": end,
        "lookback": GPS_LOOKBACK if rollup.source == "gps_points" else ORDER_LOOKBACK,
        "top_dishes": settings.analytics.top_dishes,
        "stop_speed_kmh": settings.analytics.stop_speed_kmh,
    }


def window_days(start: datetime, end: datetime) -> list:
    """The UTC days a window touches (native partitions must exist for each)."""
    first = start.date()
    last = (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def ensure_window_partitions(conn: psycopg.Connection, table: str, start: datetime, end: datetime):
    """On the native storage path, create the daily partitions of `table` a window needs."""
    from openpipe.storage.schema import ensure_partitions, existing_partitions, read_storage

    if read_storage(conn) != migrations.NATIVE:
        return []
    known = {
        d
        for d in (migrations.partition_day(table, n) for n in existing_partitions(conn, table))
        if d
    }
    return ensure_partitions(conn, table, window_days(start, end), known)


def replace_window(
    conn: psycopg.Connection, rollup: Rollup, settings: Settings, start: datetime, end: datetime
) -> RollupResult:
    """Recompute `rollup` for [start, end): delete its rows and insert new ones in one transaction."""
    began = time.perf_counter()
    ensure_window_partitions(conn, rollup.table, start, end)
    params = rollup_params(rollup, settings, start, end)
    with conn.transaction():
        deleted = conn.execute(rollup.delete_sql(), params).rowcount
        written = conn.execute(rollup.insert_sql, params).rowcount
    result = RollupResult(rollup.table, start, end, deleted, written, time.perf_counter() - began)
    log.info("%s [%s, %s): %d rows replaced by %d", rollup.table, start, end, deleted, written)
    return result
