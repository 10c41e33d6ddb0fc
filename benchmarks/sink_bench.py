"""Sink benchmark: drain rate vs the binary-COPY ceiling, and produce->visible freshness.

Rate: 200,000 wearable events are produced to a fresh topic first; then, per round, the
sink engine drains them (batches of pipeline.batch_size, validation, dedup, staging COPY,
INSERT ON CONFLICT, offsets) into a fresh table identical to wearable_readings, and a
binary COPY of the same rows, built in memory beforehand, loads another identical table.
Medians over the rounds; the ratio is sink / ceiling.

Freshness: over rows the live pipeline (sensors + simulator) ingested in the last
--window seconds, ingested_at - kafka_timestamp (the producer's send time).

Usage: uv run python benchmarks/sink_bench.py [--events 200000] [--rounds 3] [--window 300]
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

from openpipe import db, kafka
from openpipe import migrations as m
from openpipe.config import load_settings
from openpipe.events import EventValidator
from openpipe.sinks import SINKS, drain_topic, samples
from openpipe.sinks.rows import kafka_time
from openpipe.sinks.schema import ensure_partitions, read_storage

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
        producer.produce(topic, key=event["device_id"].encode(), value=value)
        if i % 5000 == 0:
            producer.poll(0)
        event = validator.parse(SPEC.family, value, now)
        rows.append(SPEC.raw_row(event, topic, 0, i, kafka_time(now)))
    if producer.flush(60):
        raise RuntimeError("producer could not deliver every benchmark event within 60 s")
    return rows


def identical_table(conn, name: str, storage: str, days) -> None:
    """A fresh table shaped exactly like wearable_readings (columns, keys, partitioning)."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    partitioning = f" PARTITION BY RANGE ({SPEC.time_column})" if storage == m.NATIVE else ""
    conn.execute(f"CREATE TABLE {name} (LIKE {SPEC.table} INCLUDING ALL){partitioning}")
    if storage == m.NATIVE:
        ensure_partitions(conn, name, days, set())
    else:
        target = m.TimePartitioning(name, SPEC.time_column)
        conn.execute(m.hypertable_sql(target, chunk_interval_hours=24, retention_days=3650)[0])


def measure_rate(settings, topic: str, rows: list[tuple], rounds: int) -> tuple[float, float]:
    """Median rows/s of (sink drain, binary COPY ceiling)."""
    sink_rates, copy_rates = [], []
    days = {r[1].date() for r in rows}

    def connect():
        return db.connect(settings, application_name="openpipe-bench", autocommit=True)

    with connect() as conn:
        storage = read_storage(conn)
    for round_no in range(rounds):
        sink_table, ceiling_table = f"bench_sink_{round_no}", f"bench_ceiling_{round_no}"
        spec = dataclasses.replace(SPEC, table=sink_table)
        with connect() as conn:
            identical_table(conn, sink_table, storage, days)
            identical_table(conn, ceiling_table, storage, days)
            conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink_table,))
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
        sink_seconds = time.perf_counter() - started
        if drained != len(rows):
            raise RuntimeError(f"sink wrote {drained} rows, expected {len(rows)}")
        with connect() as conn, conn.transaction(), conn.cursor() as cur:
            started = time.perf_counter()
            db.copy_rows(cur, ceiling_table, SPEC.column_names, SPEC.column_types, rows)
        copy_seconds = time.perf_counter() - started
        sink_rates.append(len(rows) / sink_seconds)
        copy_rates.append(len(rows) / copy_seconds)
        print(
            f"round {round_no + 1}: sink {sink_rates[-1]:,.0f} rows/s ({sink_seconds:.2f} s), "
            f"binary COPY {copy_rates[-1]:,.0f} rows/s ({copy_seconds:.2f} s)",
            flush=True,
        )
        with connect() as conn:
            conn.execute(f"DROP TABLE {sink_table}")
            conn.execute(f"DROP TABLE {ceiling_table}")
            conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink_table,))
    return statistics.median(sink_rates), statistics.median(copy_rates)


def measure_freshness(settings, window_s: int) -> tuple[int, float, float] | None:
    """(rows, p50 s, p95 s) of ingested_at - kafka_timestamp over the live raw tables."""
    query = (
        "SELECT extract(epoch FROM ingested_at - kafka_timestamp) FROM {t} "
        "WHERE ingested_at > now() - make_interval(secs => %s) AND kafka_topic = %s"
    )
    lags: list[float] = []
    with db.connect(settings, autocommit=True) as conn:
        for spec in (s for s in SINKS.values() if s.family):
            lags += [
                float(v)
                for (v,) in conn.execute(
                    query.format(t=spec.table), (window_s, spec.topic(settings))
                ).fetchall()
            ]
    if not lags:
        return None
    cuts = statistics.quantiles(lags, n=100)
    return len(lags), cuts[49], cuts[94]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=300, help="freshness window, seconds")
    parser.add_argument("--freshness-only", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    if args.freshness_only:
        return _report_freshness(settings, args.window)
    topic = f"bench-sinks-{uuid.uuid4().hex[:8]}"
    print(f"producing {args.events:,} wearable events to {topic} ...", flush=True)
    rows = produce(settings, topic, args.events)
    try:
        sink_rate, copy_rate = measure_rate(settings, topic, rows, args.rounds)
    finally:
        admin = kafka.admin_client(settings.kafka.bootstrap_servers)  # alive until the futures end
        for future in admin.delete_topics([topic]).values():
            future.result()
    print(
        f"sink rate (median of {args.rounds}): {sink_rate:,.0f} rows/s; binary COPY ceiling "
        f"{copy_rate:,.0f} rows/s; ratio {sink_rate / copy_rate:.2f} (target >= 0.5)"
    )
    return _report_freshness(settings, args.window)


def _report_freshness(settings, window: int) -> int:
    fresh = measure_freshness(settings, window)
    if fresh is None:
        print(f"freshness: no live rows ingested in the last {window} s (sensors off?)")
    else:
        count, p50, p95 = fresh
        print(
            f"freshness over {count:,} live rows in the last {window} s: "
            f"p50 {p50:.1f} s, p95 {p95:.1f} s (target p95 <= 30 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
