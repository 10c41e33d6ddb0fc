"""Flink benchmark: windowed vs pass-through throughput, and alert latency to PostgreSQL.

Usage: uv run python benchmarks/flink_bench.py [--events 300000] [--latency-seconds 200]

Everything runs on the stack's Flink cluster and Kafka with scratch topics and job names
(OPENPIPE__* overrides), so the live pipeline is untouched.

1. Throughput. A backlog of wearable events from the simulator's fleet model on its
   virtual clock (Kafka timestamp = event time) is drained by the pass-through job
   (same source, parsing and validation, no windows), then by the health-window job.
   Rate = events / (last output committed - job RUNNING). A backlog drained at rate R
   means R events/s can be sustained without lag growing.
2. Alert latency, default settings. Devices report an elevated heart rate every second
   in real time; each alert's latency is measured from window end + watermark delay to
   (a) the alert being readable (committed) in Kafka and (b) its row in health_alerts,
   drained by the sink code every pipeline.flush_interval_s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException

from flink_jobs.reference import expected_outputs, wearable_event
from openpipe import kafka
from openpipe.config import REPO_ROOT, Settings, load_settings
from openpipe.sinks import SINKS
from openpipe.sinks.drain import drain_topic
from openpipe.storage import db
from openpipe_dagster.resources.flink import FlinkService
from simulator.wearables import WearableFleet

PASSTHROUGH = REPO_ROOT / "flink_jobs" / "passthrough.py"
TOPIC_KEYS = ("wearables", "health_metrics_1min", "health_metrics_10min", "health_alerts")


def _scratch(label: str, suffix: str, wearables: str | None = None, **extra: str) -> Settings:
    """Point settings (and the `flink run` subprocess, via os.environ) at scratch topics."""
    for key in TOPIC_KEYS:
        os.environ[f"OPENPIPE__KAFKA__TOPICS__{key.upper()}"] = f"bench-{label}-{key}-{suffix}"
    if wearables:
        os.environ["OPENPIPE__KAFKA__TOPICS__WEARABLES"] = wearables
    os.environ["OPENPIPE__FLINK__JOB_NAME"] = f"bench-{label}-{suffix}"
    for key, value in extra.items():
        os.environ[key] = value
    settings = load_settings()
    topics = settings.kafka.topics
    names = [getattr(topics, key) for key in TOPIC_KEYS]
    kafka.ensure_topics(
        kafka.admin_client(settings.kafka.bootstrap_servers),
        names,
        settings.kafka.partitions,
        settings.kafka.replication_factor,
    )
    return settings


def _drop_topics(settings: Settings) -> None:
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    names = [getattr(settings.kafka.topics, key) for key in TOPIC_KEYS]
    for topic, future in admin.delete_topics(names).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # already gone
                print(f"could not delete scratch topic {topic}: {exc}")


def _produce(settings: Settings, messages: list[tuple[str, bytes, int]]) -> None:
    producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
    for key, value, ts in messages:
        while True:
            try:
                producer.produce(
                    settings.kafka.topics.wearables, value=value, key=key.encode(), timestamp=ts
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("Kafka did not acknowledge every benchmark event within 60 s")


def _flush_events(settings: Settings, at_ms: int) -> None:
    """An invalid reading ahead of everything on every partition: closes all windows."""
    producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
    event = orjson.dumps(wearable_event("bench-flush", "heart_rate", at_ms, heart_rate_bpm=999))
    for partition in range(settings.kafka.partitions):
        producer.produce(
            settings.kafka.topics.wearables, value=event, partition=partition, timestamp=at_ms
        )
    producer.flush(30)


def _total(settings: Settings, topics: list[str]) -> int:
    """Committed records in `topics` (transaction markers subtracted via a read_committed scan)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-count-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(topics)
    count, idle_since = 0, time.monotonic()
    try:
        while time.monotonic() - idle_since < 3:
            batch = consumer.consume(10000, 0.5)
            if batch:
                count += sum(1 for m in batch if not m.error())
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return count


def _drain_rate(settings: Settings, script: Path, outputs: list[str], expected: int, n: int):
    """Submit a job on the backlog; seconds from RUNNING until `expected` outputs are committed."""
    service = FlinkService(
        rest_url=settings.flink.rest_url,
        job_name=settings.flink.job_name,
        state_dir=tempfile.mkdtemp(prefix="flink-bench-"),
    )
    job_id = service.submit(script=script)
    try:
        service.wait_for_state(job_id, {"RUNNING"}, timeout_s=180)
        started = time.monotonic()
        seen, grew = 0, time.monotonic()
        while seen < expected:
            if time.monotonic() - grew > 60:
                raise RuntimeError(
                    f"{script.name}: {seen} outputs committed, {expected} expected, and no "
                    "growth for 60 s; the job's results differ from the reference model"
                )
            time.sleep(2)
            count = _total(settings, outputs)
            if count > seen:
                seen, grew = count, time.monotonic()
        if seen != expected:
            raise RuntimeError(f"{script.name}: {seen} outputs committed, {expected} expected")
        seconds = grew - started
    finally:
        service.cancel(job_id)
    return n / seconds, seconds


def throughput(events: int) -> dict[str, float]:
    """Events/s drained by the pass-through job and by the health-window job."""
    suffix = uuid.uuid4().hex[:6]
    overrides = {"OPENPIPE__FLINK__CHECKPOINT_INTERVAL_S": "2"}  # commit outputs promptly
    settings = _scratch("tp", suffix, **overrides)
    start = (int(time.time() * 1000) // 600_000) * 600_000 - 6 * 3_600_000
    fleet = WearableFleet(settings.devices.wearables, seed=7, start_ms=start)
    messages: list[tuple[str, bytes, int]] = []
    t = start
    while len(messages) < events:
        batch = fleet.generate(t, t + 600_000)
        messages += list(zip(batch.keys, batch.values, batch.times_ms, strict=True))
        t += 600_000
    messages = messages[:events]
    _produce(settings, messages)
    _flush_events(settings, t + 3_600_000)
    expected = expected_outputs(settings, [(v, ts) for _, v, ts in messages])
    readings = sum(
        2 if b'"blood_pressure"' in v else 1 for _, v, _ in messages
    )  # the fleet's events are all valid
    topics = settings.kafka.topics
    try:
        pt_rate, pt_s = _drain_rate(
            settings, PASSTHROUGH, [topics.health_metrics_1min], readings, len(messages)
        )
        windowed = _scratch("win", suffix, wearables=topics.wearables, **overrides)
        outputs = [
            windowed.kafka.topics.health_metrics_1min,
            windowed.kafka.topics.health_metrics_10min,
            windowed.kafka.topics.health_alerts,
        ]
        win_rate, win_s = _drain_rate(
            windowed,
            REPO_ROOT / "flink_jobs" / "health_windows.py",
            outputs,
            sum(len(rows) for rows in expected.values()),
            len(messages),
        )
    finally:
        _drop_topics(settings)
        if "windowed" in locals():
            _drop_topics(windowed)
    return {
        "events": len(messages),
        "passthrough_events_s": pt_rate,
        "passthrough_seconds": pt_s,
        "windowed_events_s": win_rate,
        "windowed_seconds": win_s,
        "ratio": win_rate / pt_rate,
    }


def alert_latency(seconds: float, devices: int = 30) -> dict[str, float]:
    """p50/p95 seconds from window end + watermark delay to the alert in Kafka and in Postgres."""
    for key in list(os.environ):
        if key.startswith("OPENPIPE__"):
            del os.environ[key]
    suffix = uuid.uuid4().hex[:6]
    settings = _scratch("lat", suffix)
    delay_s = settings.flink.watermark_delay_seconds
    service = FlinkService(
        rest_url=settings.flink.rest_url,
        job_name=settings.flink.job_name,
        state_dir=tempfile.mkdtemp(prefix="flink-bench-"),
    )
    job = service.deploy(settings).job
    prefix = f"bench-lat-{suffix}"
    stop = threading.Event()
    kafka_seen: dict[tuple[str, str], float] = {}

    def read_alerts() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"{prefix}-reader",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([settings.kafka.topics.health_alerts])
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                record = orjson.loads(message.value())
                kafka_seen[(record["device_id"], record["window_end"])] = time.time()
        consumer.close()

    reader = threading.Thread(target=read_alerts, daemon=True)
    reader.start()
    producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
    sink = f"bench-{suffix}"

    def connect():
        return db.connect(settings, application_name="flink-bench", autocommit=True)

    try:
        next_drain = time.monotonic()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            for d in range(devices):
                event = wearable_event(f"{prefix}-d{d}", "heart_rate", now_ms, heart_rate_bpm=130)
                producer.produce(
                    settings.kafka.topics.wearables,
                    value=orjson.dumps(event),
                    key=event["device_id"].encode(),
                    timestamp=now_ms,
                )
            producer.poll(0)
            if time.monotonic() >= next_drain:
                drain_topic(
                    SINKS["health_alerts"],
                    settings,
                    connect=connect,
                    sink=sink,
                    make_consumer=lambda group: kafka.make_consumer(
                        settings.kafka.bootstrap_servers, group
                    ),
                )
                next_drain = time.monotonic() + settings.pipeline.flush_interval_s
            time.sleep(max(0.0, 1 - (time.time() * 1000 - now_ms) / 1000))
        producer.flush(30)
        with connect() as conn:
            rows = conn.execute(
                "SELECT device_id, window_end, ingested_at FROM health_alerts "
                "WHERE device_id LIKE %s",
                (f"{prefix}-%",),
            ).fetchall()
    finally:
        stop.set()
        reader.join(5)
        service.cancel(job.job_id)
        with connect() as conn:
            conn.execute("DELETE FROM health_alerts WHERE device_id LIKE %s", (f"{prefix}-%",))
            conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink,))
        _drop_topics(settings)

    def due(window_end: datetime) -> float:
        return window_end.timestamp() + delay_s

    pg = sorted(ingested.timestamp() - due(end) for _, end, ingested in rows)
    to_kafka = sorted(
        seen - (datetime.fromisoformat(end).timestamp() + delay_s)
        for (_, end), seen in kafka_seen.items()
    )

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "alerts": len(pg),
        "kafka_p50_s": pct(to_kafka, 0.5),
        "kafka_p95_s": pct(to_kafka, 0.95),
        "postgres_p50_s": pct(pg, 0.5),
        "postgres_p95_s": pct(pg, 0.95),
        "postgres_mean_s": statistics.fmean(pg) if pg else float("nan"),
    }


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--latency-seconds", type=float, default=200)
    parser.add_argument("--only", choices=("throughput", "latency"))
    args = parser.parse_args()
    started = datetime.now(UTC)
    if args.only != "latency":
        _print_throughput(throughput(args.events))
    if args.only != "throughput":
        _print_latency(alert_latency(args.latency_seconds))
    print(f"started {started:%Y-%m-%d %H:%M} UTC")


def _print_throughput(tp: dict[str, float]) -> None:
    print(
        f"flink throughput ({tp['events']} events backlog): pass-through "
        f"{tp['passthrough_events_s']:,.0f} ev/s ({tp['passthrough_seconds']:.1f} s), windowed "
        f"{tp['windowed_events_s']:,.0f} ev/s ({tp['windowed_seconds']:.1f} s), "
        f"ratio {tp['ratio']:.2f} (target >= 0.5)"
    )


def _print_latency(lat: dict[str, float]) -> None:
    print(
        f"flink alert latency (window end + watermark delay -> ...; {lat['alerts']} alerts): "
        f"Kafka p50 {lat['kafka_p50_s']:.1f} s p95 {lat['kafka_p95_s']:.1f} s; "
        f"PostgreSQL p50 {lat['postgres_p50_s']:.1f} s p95 {lat['postgres_p95_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
