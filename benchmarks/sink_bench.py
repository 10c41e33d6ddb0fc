"""Sink benchmark: drain rate vs the binary-COPY ceiling, and produce->visible freshness.

Rate: 200,000 wearable events are produced to a fresh topic first; then, per round, the
sink engine drains them (runs of pipeline.batch_size messages: validation, dedup, COPY,
dead letters and offsets per transaction) into a fresh table identical to
wearable_readings, and a binary COPY of the same rows, built in memory beforehand, loads
another identical table in one transaction. The two alternate which goes first. The
ratio is the median of the rounds' sink / ceiling ratios (each pair measured back to
back, so load that drifts during the run affects both sides of a pair alike).

Freshness (measured first): once the live sinks have drained what was produced before
the benchmark started, ingested_at - kafka_timestamp (the producer's send time) of the
rows the live pipeline (sensors + simulator) stores during the next --window seconds.

Usage: uv run python benchmarks/sink_bench.py [--events 200000] [--rounds 5] [--window 120]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
import uuid

from confluent_kafka.admin import NewTopic

from openpipe import kafka
from openpipe.config import load_settings
from openpipe.events import EventValidator
from openpipe.sinks import SINKS, drain_topic, partition_lag, samples
from openpipe.sinks.rows import kafka_time
from openpipe.sinks.writer import read_offsets
from openpipe.storage import db, migrations
from openpipe.storage.schema import ensure_partitions, read_storage

SPEC = SINKS["wearable_readings"]


def produce(settings, topic: str, count: int) -> list[tuple]:
    """Produce `count` valid wearable events; returns the rows they should become."""
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    futures = admin.create_topics(
        [NewTopic(topic, settings.kafka.partitions, settings.kafka.replication_factor)]
    )
    for future in futures.values():
        future.result()
    producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
    validator = EventValidator(settings)
    rng = random.Random(42)
    now = int(time.time() * 1000)
    rows = []
    for i in range(count):
        event = samples.wearable_event(rng, now - 50 * i)
        value = samples.encode(event)
        kafka.produce_waiting(producer, topic, key=event["device_id"].encode(), value=value)
        if i % 5000 == 0:
            producer.poll(0)
        event = validator.parse(SPEC.family, value, now)
        rows.append(SPEC.raw_row(event, (topic, 0, i, kafka_time(now), None)))
    if producer.flush(60):
        raise RuntimeError("producer could not deliver every benchmark event within 60 s")
    return rows


def identical_table(conn, name: str, storage: str, days) -> None:
    """A fresh table shaped exactly like wearable_readings (columns, keys, partitioning)."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    partitioning = (
        f" PARTITION BY RANGE ({SPEC.time_column})" if storage == migrations.NATIVE else ""
    )
    conn.execute(f"CREATE TABLE {name} (LIKE {SPEC.table} INCLUDING ALL){partitioning}")
    if storage == migrations.NATIVE:
        ensure_partitions(conn, name, days, set())
    else:
        target = migrations.TimePartitioning(name, SPEC.time_column)
        conn.execute(
            migrations.hypertable_sql(target, chunk_interval_hours=24, retention_days=3650)[0]
        )


def measure_rate(settings, topic: str, rows: list[tuple], rounds: int) -> list[tuple[float, float]]:
    """(sink rows/s, binary COPY rows/s) per round; the two alternate which goes first."""
    rates = []
    days = {r[1].date() for r in rows}

    def connect():
        return db.connect(settings, application_name="openpipe-bench", autocommit=True)

    with connect() as conn:
        storage = read_storage(conn)
    for round_no in range(rounds):
        sink_table, ceiling_table = f"bench_sink_{round_no}", f"bench_ceiling_{round_no}"
        with connect() as conn:
            identical_table(conn, sink_table, storage, days)
            identical_table(conn, ceiling_table, storage, days)
            conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink_table,))
        try:
            if round_no % 2:
                copy_seconds = time_ceiling(connect, ceiling_table, rows)
                sink_seconds = time_sink(settings, connect, topic, sink_table, len(rows))
            else:
                sink_seconds = time_sink(settings, connect, topic, sink_table, len(rows))
                copy_seconds = time_ceiling(connect, ceiling_table, rows)
        finally:
            with connect() as conn:
                conn.execute(f"DROP TABLE {sink_table}")
                conn.execute(f"DROP TABLE {ceiling_table}")
                conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink_table,))
        rates.append((len(rows) / sink_seconds, len(rows) / copy_seconds))
        print(
            f"round {round_no + 1}: sink {rates[-1][0]:,.0f} rows/s ({sink_seconds:.2f} s), "
            f"binary COPY {rates[-1][1]:,.0f} rows/s ({copy_seconds:.2f} s), "
            f"ratio {rates[-1][0] / rates[-1][1]:.2f}",
            flush=True,
        )
    return rates


def time_sink(settings, connect, topic: str, table: str, expected: int) -> float:
    """Seconds for the sink engine to drain the whole topic into `table`, as runs would."""
    spec = dataclasses.replace(SPEC, table=table)
    started = time.perf_counter()
    drained = 0
    while True:
        result = drain_topic(
            spec,
            settings,
            connect=connect,
            make_consumer=lambda group: kafka.make_consumer(
                settings.kafka.bootstrap_servers, group
            ),
            topic=topic,
        )
        drained += result.rows_written
        if result.total_lag == 0:
            break
    seconds = time.perf_counter() - started
    if drained != expected:
        raise RuntimeError(f"sink wrote {drained} rows, expected {expected}")
    return seconds


def time_ceiling(connect, table: str, rows: list[tuple]) -> float:
    """Seconds to binary-COPY the prepared rows into `table` and commit."""
    with connect() as conn:
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            db.copy_rows(cur, table, SPEC.column_names, SPEC.column_types, rows)
        return time.perf_counter() - started


def measure_freshness(settings, window_s: int) -> tuple[int, float, float] | None:
    """(rows, p50 s, p95 s) of ingested_at - kafka_timestamp in a steady-state window.

    Waits until the live raw sinks have drained everything produced before it started
    (a backlog, or the load of a benchmark that ran just before, is not steady state),
    then watches the live pipeline for `window_s` seconds.
    """
    raw = [spec for spec in SINKS.values() if spec.family]
    consumer = kafka.make_consumer(settings.kafka.bootstrap_servers, "openpipe-bench-freshness")
    try:
        targets = {
            spec.table: kafka.high_watermarks(consumer, spec.topic(settings)) for spec in raw
        }
    finally:
        consumer.close()
    query = (
        "SELECT extract(epoch FROM ingested_at - kafka_timestamp) FROM {t} "
        "WHERE ingested_at BETWEEN %s AND %s AND kafka_topic = %s"
    )
    with db.connect(settings, autocommit=True) as conn:
        deadline = time.monotonic() + 300
        while True:
            behind = sum(
                sum(
                    partition_lag(
                        read_offsets(conn, spec.table, spec.topic(settings)), marks
                    ).values()
                )
                for spec, marks in ((spec, targets[spec.table]) for spec in raw)
            )
            if behind == 0 or time.monotonic() > deadline:
                break
            print(
                f"\rwaiting for the live sinks to catch up: {behind:,} messages", end="", flush=True
            )
            time.sleep(2)
        if behind:
            print(f"\nthe live sinks are still {behind:,} messages behind; measuring anyway")
        began = conn.execute("SELECT now()").fetchone()[0]
        for waited in range(0, window_s, 10):
            print(f"\rwatching the live pipeline: {waited}/{window_s} s ", end="", flush=True)
            time.sleep(min(10, window_s - waited))
        print()
        ended = conn.execute("SELECT now()").fetchone()[0]
        lags = [
            float(v)
            for spec in raw
            for (v,) in conn.execute(
                query.format(t=spec.table), (began, ended, spec.topic(settings))
            ).fetchall()
        ]
    if not lags:
        return None
    cuts = statistics.quantiles(lags, n=100)
    return len(lags), cuts[49], cuts[94]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=120, help="freshness window, seconds")
    parser.add_argument("--freshness-only", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    _report_freshness(settings, args.window)  # first: the rate rounds below load both cores
    if args.freshness_only:
        return 0
    topic = f"bench-sinks-{uuid.uuid4().hex[:8]}"
    print(f"producing {args.events:,} wearable events to {topic} ...", flush=True)
    rows = produce(settings, topic, args.events)
    try:
        rates = measure_rate(settings, topic, rows, args.rounds)
    finally:
        admin = kafka.admin_client(settings.kafka.bootstrap_servers)  # alive until the futures end
        for future in admin.delete_topics([topic]).values():
            future.result()
    sink_rate = statistics.median(sink for sink, _ in rates)
    copy_rate = statistics.median(ceiling for _, ceiling in rates)
    ratio = statistics.median(sink / ceiling for sink, ceiling in rates)
    print(
        f"sink rate (median of {args.rounds}): {sink_rate:,.0f} rows/s; binary COPY ceiling "
        f"{copy_rate:,.0f} rows/s; ratio (median of the rounds' ratios) {ratio:.2f} "
        "(target >= 0.5)"
    )
    return 0


def _report_freshness(settings, window: int) -> None:
    fresh = measure_freshness(settings, window)
    if fresh is None:
        print(f"freshness: no live rows ingested in {window} s (simulator or sensors off?)")
    else:
        count, p50, p95 = fresh
        print(
            f"freshness over {count:,} live rows ingested in {window} s of steady state: "
            f"p50 {p50:.1f} s, p95 {p95:.1f} s (target p95 <= 30 s)",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
