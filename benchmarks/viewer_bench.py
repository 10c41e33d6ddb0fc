"""SQL viewer latency: p50/p95 of GET /api/tables and of an aggregate over 1,000,000 wearable rows.

Usage: uv run python benchmarks/viewer_bench.py [--rows N] [--runs R] [--requests K] [--keep]

Creates its own table `viewer_bench.wearable_readings` (the columns of docs/architecture.md §5)
as the app role, starts the viewer as the stack does (`python -m sql_viewer`) on a
free port, and measures over real HTTP. Each figure is the median of R runs of K
requests. The schema is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from openpipe.config import load_settings

SCHEMA = "viewer_bench"
AGGREGATE_SQL = f"""
SELECT date_trunc('hour', event_time) AS hour, metric, count(*) AS readings,
       avg(heart_rate_bpm) AS avg_hr, avg(systolic_mmhg) AS avg_sys,
       avg(diastolic_mmhg) AS avg_dia, avg(glucose_mg_dl) AS avg_glucose
FROM {SCHEMA}.wearable_readings
GROUP BY 1, 2 ORDER BY 1, 2
"""


def create_rows(dsn: str, reader: str, rows: int) -> None:
    """(Re)create the bench table with `rows` wearable readings, if it has a different count."""
    ident = sql.Identifier(SCHEMA)
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.wearable_readings"]
        ).fetchone()[0]
        if exists:
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.wearable_readings").format(ident)
            ).fetchone()[0]
            if count == rows:
                return
        started = time.perf_counter()
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        conn.execute(
            sql.SQL("""
            CREATE TABLE {}.wearable_readings (
                event_id uuid NOT NULL, event_time timestamptz NOT NULL, device_id text NOT NULL,
                patient_id text NOT NULL, metric text NOT NULL, heart_rate_bpm double precision,
                systolic_mmhg double precision, diastolic_mmhg double precision,
                glucose_mg_dl double precision, kafka_topic text, kafka_partition int,
                kafka_offset bigint, kafka_timestamp timestamptz, ingested_at timestamptz,
                PRIMARY KEY (event_id, event_time))
            """).format(ident)
        )
        conn.execute(
            sql.SQL("""
            INSERT INTO {}.wearable_readings
            SELECT gen_random_uuid(), t, 'wearable-' || lpad((i %% 200)::text, 4, '0'),
                   'patient-' || (i %% 200), m,
                   CASE WHEN m = 'heart_rate' THEN 55 + random() * 60 END,
                   CASE WHEN m = 'blood_pressure' THEN 100 + random() * 60 END,
                   CASE WHEN m = 'blood_pressure' THEN 60 + random() * 35 END,
                   CASE WHEN m = 'blood_sugar' THEN 70 + random() * 150 END,
                   'virtual-wearables', i %% 3, i / 3, t, t
            FROM generate_series(1, %s) i,
                 LATERAL (SELECT now() - (i * interval '86 ms') AS t,
                          (ARRAY['heart_rate', 'heart_rate', 'heart_rate', 'blood_pressure',
                                 'blood_sugar'])[1 + i %% 5] AS m) x
            """).format(ident),
            [rows],
        )
        conn.execute(sql.SQL("ANALYZE {}.wearable_readings").format(ident))
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, sql.Identifier(reader))
        )
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                ident, sql.Identifier(reader)
            )
        )
        print(f"created {rows:,} rows in {time.perf_counter() - started:.1f} s")


def start_viewer(log: Path) -> tuple[subprocess.Popen, str]:
    """Run `python -m sql_viewer` on a free port and wait until it is live."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "OPENPIPE_VIEWER_TOKEN"}
    env["OPENPIPE__MONITORING__VIEWER_PORT"] = str(port)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sql_viewer"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the viewer did not start; see {log}")


def measure(client: httpx.Client, request: dict, runs: int, count: int) -> tuple[float, float]:
    """Median over runs of (p50, p95) latency in ms of `count` sequential requests."""
    p50s, p95s = [], []
    client.request(**request).raise_for_status()  # warm-up
    for _ in range(runs):
        took = []
        for _ in range(count):
            started = time.perf_counter()
            response = client.request(**request)
            took.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        p50s.append(statistics.median(took))
        p95s.append(statistics.quantiles(took, n=20, method="inclusive")[18])
    return statistics.median(p50s), statistics.median(p95s)


def main() -> None:
    """Create the data, start the viewer, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the viewer_bench schema")
    args = parser.parse_args()
    settings = load_settings()
    db = settings.database
    create_rows(db.dsn(), db.reader_user, args.rows)
    process, url = start_viewer(Path(tempfile.gettempdir()) / "viewer_bench.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            tables = measure(
                client, {"method": "GET", "url": "/api/tables"}, args.runs, args.requests
            )
            query = {"method": "POST", "url": "/api/query", "json": {"sql": AGGREGATE_SQL}}
            result = client.request(**query).json()
            aggregate = measure(client, query, args.runs, args.requests)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if not args.keep:
            with psycopg.connect(db.dsn(), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA))
                )
    print(f"SQL viewer latency, median of {args.runs} runs x {args.requests} sequential requests")
    print(
        f"  GET /api/tables                         p50 {tables[0]:7.1f} ms   p95 {tables[1]:7.1f} ms"
    )
    print(
        f"  POST /api/query hourly aggregate over {args.rows:,} wearable rows "
        f"({result['row_count']} result rows)"
    )
    print(
        f"                                          p50 {aggregate[0]:7.1f} ms   p95 {aggregate[1]:7.1f} ms"
    )
    print(
        f"  database time of one aggregate (elapsed_ms in the response): {result['elapsed_ms']} ms"
    )


if __name__ == "__main__":
    main()
