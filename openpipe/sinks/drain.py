"""drain_topic: one micro-batch from a Kafka topic into its table, with exactly-once effect.

Under a per-sink advisory lock: read the stored offsets, seek each partition there,
consume up to the high watermark seen at start (bounded by pipeline.batch_size and
pipeline.max_batch_seconds), then write rows, dead letters and new offsets in one
transaction. Database and Kafka failures propagate (the run fails and is retried);
only bad messages become dead letters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from openpipe import kafka as kafka_helpers
from openpipe import migrations as m
from openpipe.config import Settings
from openpipe.db import advisory_unlock, try_advisory_lock
from openpipe.sinks.batch import Batch
from openpipe.sinks.schema import ensure_partitions, existing_partitions, read_storage
from openpipe.sinks.specs import SinkSpec
from openpipe.sinks.writer import crash_point, read_offsets, write_batch

log = logging.getLogger(__name__)
_CONSUME_CHUNK = 10_000
_TIMEOUT_S = 10.0


@dataclass
class DrainResult:
    """What one drain did; becomes the asset's materialization metadata."""

    sink: str
    topic: str
    storage: str = ""
    skipped_reason: str | None = None
    messages: int = 0
    rows_written: int = 0
    duplicates_dropped: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    offset_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    lag_after: dict[int, int] = field(default_factory=dict)
    partitions_created: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag_after.values())


def lock_name(sink: str, topic: str) -> str:
    """The advisory lock that lets only one writer drain `topic` into `sink` at a time."""
    return f"openpipe.sink:{sink}:{topic}"


def partition_lag(stored: dict[int, int], marks: dict[int, int]) -> dict[int, int]:
    """Partition -> messages between the stored offset and the high watermark."""
    return {p: max(0, high - stored.get(p, 0)) for p, high in marks.items()}


def _low_watermarks(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    lows = {}
    for p in partitions:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)
        lows[p] = low
    return lows


def _consume(
    consumer: Consumer,
    batch: Batch,
    topic: str,
    starts: dict[int, int],
    targets: dict[int, int],
    *,
    max_messages: int,
    deadline: float,
) -> dict[int, int]:
    """Fill `batch` from `starts` up to `targets`; returns partition -> next offset reached."""
    reached = dict(starts)
    pending = {p for p in targets if reached[p] < targets[p]}
    consumer.assign([TopicPartition(topic, p, reached[p]) for p in sorted(pending)])
    while pending and batch.messages < max_messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        chunk = consumer.consume(
            num_messages=min(_CONSUME_CHUNK, max_messages - batch.messages),
            timeout=min(remaining, 1.0),
        )
        for msg in chunk:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            partition, offset = msg.partition(), msg.offset()
            if partition not in pending or offset >= targets[partition]:
                continue  # beyond the high watermark seen at start: the next run's work
            batch.add(partition, offset, msg.key(), msg.value(), msg.timestamp()[1], msg.headers())
            reached[partition] = offset + 1
            if reached[partition] >= targets[partition]:
                pending.discard(partition)
        if not chunk and pending:
            # Offsets can have gaps (compaction, transaction markers): trust the position.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= targets[tp.partition]:
                    reached[tp.partition] = targets[tp.partition]
                    pending.discard(tp.partition)
    return reached


def drain_topic(
    spec: SinkSpec,
    settings: Settings,
    *,
    connect: Callable[[], psycopg.Connection],
    make_consumer: Callable[[str], Consumer],
    sink: str | None = None,
    topic: str | None = None,
    max_messages: int | None = None,
    max_seconds: float | None = None,
) -> DrainResult:
    """Drain one micro-batch of `topic` (default: the spec's topic) into the spec's table."""
    started = time.monotonic()
    sink = sink or spec.table
    topic = topic or spec.topic(settings)
    max_messages = max_messages or settings.pipeline.batch_size
    deadline = started + (max_seconds or settings.pipeline.max_batch_seconds)
    result = DrainResult(sink=sink, topic=topic)
    with connect() as conn:
        if not try_advisory_lock(conn, lock_name(sink, topic)):
            result.skipped_reason = "another run holds this sink's advisory lock"
            log.warning("%s: %s; skipping", sink, result.skipped_reason)
            return result
        consumer = make_consumer(f"openpipe-sink-{sink}")
        try:
            result.storage = read_storage(conn)
            stored = read_offsets(conn, sink, topic)
            marks = kafka_helpers.high_watermarks(consumer, topic)
            lows = _low_watermarks(consumer, topic, list(marks))
            starts = {p: max(stored.get(p, 0), lows[p]) for p in marks}
            for p in marks:
                if stored.get(p, 0) < lows[p]:
                    log.warning(
                        "%s %s[%d]: offsets %d..%d were deleted by Kafka retention before "
                        "they were drained",
                        sink,
                        topic,
                        p,
                        stored.get(p, 0),
                        lows[p],
                    )
            batch = Batch.for_sink(spec, settings, sink=sink, topic=topic)
            reached = _consume(
                consumer, batch, topic, starts, marks, max_messages=max_messages, deadline=deadline
            )
            advanced = {p: n for p, n in reached.items() if n != stored.get(p)}
            rows = batch.table_rows()
            if result.storage == m.NATIVE and rows:
                result.partitions_created = _ensure_days(conn, spec, rows)
            crash_point("before_write")
            if advanced:
                written = write_batch(
                    conn,
                    spec,
                    sink=sink,
                    topic=topic,
                    rows=rows,
                    dead_letters=batch.dead_letters,
                    start_offsets={p: stored.get(p) for p in advanced},
                    next_offsets=advanced,
                )
                crash_point("after_commit")
                result.rows_written = written.rows_written
                result.duplicates_dropped = batch.duplicates + written.conflicts
                _commit_to_kafka(consumer, topic, advanced)
            result.messages = batch.messages
            result.dead_letters = dict(batch.dead_letter_kinds)
            result.offset_ranges = {
                p: (starts[p], reached[p]) for p in sorted(reached) if reached[p] > starts[p]
            }
            final = {**stored, **advanced}
            result.lag_after = partition_lag(final, kafka_helpers.high_watermarks(consumer, topic))
        finally:
            consumer.close()
            if not conn.closed and not conn.broken:
                advisory_unlock(conn, lock_name(sink, topic))
    result.seconds = time.monotonic() - started
    log.info(
        "%s: %d messages from %s -> %d rows, %d duplicates, %d dead letters in %.2f s",
        sink,
        result.messages,
        topic,
        result.rows_written,
        result.duplicates_dropped,
        sum(result.dead_letters.values()),
        result.seconds,
    )
    return result


_KNOWN_DAYS: dict[str, set] = {}


def _ensure_days(conn: psycopg.Connection, spec: SinkSpec, rows: list[tuple]) -> list[str]:
    """Native path: make sure a daily partition exists for every day this batch touches."""
    index = spec.column_names.index(spec.time_column)
    days = {datetime.fromtimestamp(row[index].timestamp(), UTC).date() for row in rows}
    known = _KNOWN_DAYS.get(spec.table)
    if known is None or not days <= known:
        names = existing_partitions(conn, spec.table)
        known = {d for d in (m.partition_day(spec.table, n) for n in names) if d}
        _KNOWN_DAYS[spec.table] = known
    return ensure_partitions(conn, spec.table, days, known)


def _commit_to_kafka(consumer: Consumer, topic: str, offsets: dict[int, int]) -> None:
    """Mirror the stored offsets into the consumer group so Kafka tools show the lag.

    Postgres stays the source of truth; a failed mirror only delays what tools show.
    """
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, n) for p, n in offsets.items()], asynchronous=False
        )
    except KafkaException as exc:
        log.warning("could not mirror offsets of %s to Kafka (informational only): %s", topic, exc)
