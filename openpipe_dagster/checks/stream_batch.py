"""Stream vs batch: the Flink windows in health_metrics_* against a recompute from the raw table."""

import math
from collections import Counter
from datetime import datetime, timedelta

import dagster as dg
import psycopg
from psycopg.rows import dict_row

from openpipe.config import REPO_ROOT, Settings

SQL = (REPO_ROOT / "sql" / "checks" / "stream_vs_batch.sql").read_text(encoding="utf-8")
STREAM_BATCH_CHECK = dg.AssetCheckSpec(
    "stream_matches_batch",
    asset="health_metrics_hourly",
    additional_deps=[dg.AssetKey("health_metrics_1min"), dg.AssetKey("health_metrics_10min")],
    blocking=False,
    description=(
        "Recomputes the 1- and 10-minute windows of the partition from wearable_readings and "
        "compares them with health_metrics_1min / health_metrics_10min. Passes when every "
        "difference is explained by late events (arrived after window end + watermark delay, "
        "or behind a reading that had moved the watermark past their window); reports how "
        "many late events the stream left out."
    ),
)
MATCH, LATE, MISMATCH = "match", "explained_by_late_events", "mismatch"


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def classify_window(row: dict, tolerance: float) -> str:
    """MATCH when the stream equals the batch; LATE when it left out late readings only.

    Late readings arrive last in a window (sql/checks/stream_vs_batch.sql), so the stream
    must hold every on-time reading and equal the first stream_count readings to arrive;
    anything else is a MISMATCH.
    """
    if row["stream_count"] == row["all_count"] and all(
        _close(row[f"stream_{k}"], row[f"all_{k}"], tolerance) for k in ("avg", "min", "max")
    ):
        return MATCH
    if (
        row["late_count"] > 0
        and row["last_on_time_arrival"] <= row["stream_count"] < row["all_count"]
        and all(
            _close(row[f"stream_{k}"], row[f"counted_{k}"], tolerance)
            for k in ("avg", "min", "max")
        )
    ):
        return LATE
    return MISMATCH


def left_out(row: dict, kind: str) -> int:
    """Late readings the stream left out of a window classified `kind`."""
    return row["all_count"] - row["stream_count"] if kind == LATE else 0


def stream_batch_params(settings: Settings, start: datetime, end: datetime) -> dict:
    """Window sizes and watermark delay from the flink settings, for the check's SQL."""
    f = settings.flink
    sizes = (f.heart_rate_window_s, f.blood_pressure_window_s, f.blood_sugar_window_s)
    return {
        "start": start,
        "end": end,
        "heart_rate_window": timedelta(seconds=f.heart_rate_window_s),
        "blood_pressure_window": timedelta(seconds=f.blood_pressure_window_s),
        "blood_sugar_window": timedelta(seconds=f.blood_sugar_window_s),
        "longest_window": timedelta(seconds=max(sizes)),
        "watermark_delay": timedelta(seconds=f.watermark_delay_seconds),
    }


def compare_windows(
    conn: psycopg.Connection, settings: Settings, start: datetime, end: datetime
) -> tuple[Counter, int, list[dict]]:
    """(windows by class, late events left out, the mismatched windows) in [start, end)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SQL, stream_batch_params(settings, start, end)).fetchall()
    tolerance = settings.analytics.stream_batch_tolerance
    classes: Counter = Counter()
    mismatches = []
    late_events = 0
    for row in rows:
        kind = classify_window(row, tolerance)
        classes[kind] += 1
        late_events += left_out(row, kind)
        if kind == MISMATCH:
            mismatches.append(row)
    return classes, late_events, mismatches


def stream_batch_result(
    conn: psycopg.Connection, settings: Settings, start: datetime, end: datetime
) -> dg.AssetCheckResult:
    """The stream_matches_batch check result for [start, end)."""
    classes, late_events, mismatches = compare_windows(conn, settings, start, end)
    sample = [
        {
            "device_id": r["device_id"],
            "metric": r["metric"],
            "window_start": r["window_start"].isoformat(),
            "batch_count": r["all_count"],
            "on_time_count": r["on_time_count"],
            "stream_count": r["stream_count"],
            "batch_avg": r["all_avg"],
            "stream_avg": r["stream_avg"],
        }
        for r in mismatches[:10]
    ]
    return dg.AssetCheckResult(
        check_name=STREAM_BATCH_CHECK.name,
        asset_key=STREAM_BATCH_CHECK.asset_key,
        passed=not mismatches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "every window matches or differs only by late events"
            if not mismatches
            else f"{len(mismatches)} window(s) differ in ways late events do not explain"
        ),
        metadata={
            "windows_compared": sum(classes.values()),
            "windows_matching": classes[MATCH],
            "windows_explained_by_late_events": classes[LATE],
            "windows_mismatched": classes[MISMATCH],
            "late_events": late_events,
            "mismatch_sample": dg.MetadataValue.json(sample),
        },
    )
