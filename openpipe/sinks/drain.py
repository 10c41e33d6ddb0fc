"""drain_topic: one micro-batch run from a Kafka topic into its table, with exactly-once effect.

Under a per-sink advisory lock: read the stored offsets, seek each partition there and
consume up to the high watermark seen at start, bounded by pipeline.batch_size messages
and pipeline.max_batch_seconds. Messages are committed in chunks of COMMIT_EVERY; each
chunk's rows, dead letters and new offsets go in one transaction, written by a helper
thread while the next chunk is being validated (ordered, at most one in flight).
Database and Kafka failures propagate (the run fails and is retried); only bad
messages become dead letters.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from openpipe import kafka as kafka_helpers
from openpipe.storage import migrations
from openpipe.config import Settings
from openpipe.storage.db import advisory_unlock, try_advisory_lock
from openpipe.events import EventValidator
from openpipe.sinks.batch import Batch
from openpipe.storage.schema import ensure_partitions, existing_partitions, read_storage
from openpipe.sinks.specs import SinkSpec
from openpipe.sinks.writer import crash_point, read_offsets, write_batch

log = logging.getLogger(__name__)
#: Messages per transaction. Small enough that writing one chunk overlaps validating
#: the next; large enough that per-transaction overhead stays under a few percent.
COMMIT_EVERY = 10_000
_CONSUME_CHUNK = 5_000
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
    transactions: int = 0
    staged_transactions: int = 0  # rows went via staging + ON CONFLICT (a key was stored)
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


class _Reader:
    """Consumes assigned partitions from given offsets up to fixed target offsets."""

    def __init__(self, consumer: Consumer, topic: str, starts: dict[int, int], targets: dict):
        self.consumer, self.topic, self.targets = consumer, topic, targets
        self.reached = dict(starts)
        self.pending = {p for p in targets if self.reached[p] < targets[p]}
        consumer.assign([TopicPartition(topic, p, self.reached[p]) for p in sorted(self.pending)])

    def fill(self, batch: Batch, limit: int, deadline: float) -> None:
        """Add up to `limit` messages to `batch`, stopping at the targets or the deadline."""
        while self.pending and batch.messages < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            chunk = self.consumer.consume(
                num_messages=min(_CONSUME_CHUNK, limit - batch.messages),
                timeout=min(remaining, 1.0),
            )
            for msg in chunk:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                partition, offset = msg.partition(), msg.offset()
                if partition not in self.pending or offset >= self.targets[partition]:
                    continue  # past the high watermark seen at start: the next run's work
                batch.add(
                    partition, offset, msg.key(), msg.value(), msg.timestamp()[1], msg.headers()
                )
                self.reached[partition] = offset + 1
                if offset + 1 >= self.targets[partition]:
                    self.pending.discard(partition)
            if not chunk and self.pending:
                self._skip_gaps()

    def _skip_gaps(self) -> None:
        # Offsets can have gaps (compaction, transaction markers): trust the position.
        for tp in self.consumer.position([TopicPartition(self.topic, p) for p in self.pending]):
            if tp.offset >= self.targets[tp.partition]:
                self.reached[tp.partition] = self.targets[tp.partition]
                self.pending.discard(tp.partition)


class _ChunkWriter:
    """Writes chunks in order on one connection; tracks what is committed."""

    def __init__(self, conn, spec: SinkSpec, sink: str, topic: str, storage: str, stored: dict):
        self.conn, self.spec, self.sink, self.topic, self.storage = conn, spec, sink, topic, storage
        self.committed: dict[int, int] = dict(stored)
        self.rows_written = self.conflicts = self.transactions = self.staged = 0
        self.partitions_created: list[str] = []

    def write(self, batch: Batch, reached: dict[int, int]) -> None:
        """Commit one chunk: rows, dead letters and offsets together."""
        advanced = {p: n for p, n in reached.items() if n != self.committed.get(p)}
        if not advanced:
            return
        rows = batch.table_rows()
        if self.storage == migrations.NATIVE and rows:
            self.partitions_created += _ensure_days(self.conn, self.spec, rows)
        crash_point("before_write")
        result = write_batch(
            self.conn,
            self.spec,
            sink=self.sink,
            topic=self.topic,
            rows=rows,
            dead_letters=batch.dead_letters,
            start_offsets={p: self.committed.get(p) for p in advanced},
            next_offsets=advanced,
            # Straight COPY until a chunk meets a stored key (a replay); then staging.
            try_direct=self.staged == 0,
        )
        crash_point("after_commit")
        if rows and not result.copied_directly:
            self.staged += 1
        self.committed.update(advanced)
        self.rows_written += result.rows_written
        self.conflicts += result.conflicts
        self.transactions += 1


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
    """Drain one run's worth of `topic` (default: the spec's) into the spec's table.

    `connect` must return an autocommit connection (transactions are explicit).
    """
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
            starts, marks = _start_positions(consumer, sink, topic, stored)
            reader = _Reader(consumer, topic, starts, marks)
            writer = _ChunkWriter(conn, spec, sink, topic, result.storage, stored)
            kinds, duplicates = _run_chunks(
                reader, writer, spec, settings, sink, topic, max_messages, deadline, result
            )
            consumer.pause(consumer.assignment())  # no more fetches: watermarks answer at once
            result.rows_written = writer.rows_written
            result.duplicates_dropped = duplicates + writer.conflicts
            result.dead_letters = dict(kinds)
            result.transactions = writer.transactions
            result.staged_transactions = writer.staged
            result.partitions_created = writer.partitions_created
            result.offset_ranges = {
                p: (starts[p], n) for p, n in sorted(writer.committed.items()) if n > starts[p]
            }
            result.lag_after = partition_lag(
                writer.committed, kafka_helpers.high_watermarks(consumer, topic, marks, cached=True)
            )
            if writer.transactions:
                _commit_to_kafka(consumer, topic, writer.committed)
        finally:
            consumer.close()
            if not conn.closed and not conn.broken:
                advisory_unlock(conn, lock_name(sink, topic))
    result.seconds = time.monotonic() - started
    log.info(
        "%s: %d messages from %s -> %d rows, %d duplicates, %d dead letters, %d tx in %.2f s",
        sink,
        result.messages,
        topic,
        result.rows_written,
        result.duplicates_dropped,
        sum(result.dead_letters.values()),
        result.transactions,
        result.seconds,
    )
    return result


def _start_positions(
    consumer: Consumer, sink: str, topic: str, stored: dict[int, int]
) -> tuple[dict[int, int], dict[int, int]]:
    """(start offset, high watermark) per partition; skips what Kafka retention deleted."""
    starts, marks = {}, {}
    for p, (low, high) in kafka_helpers.watermarks(consumer, topic).items():
        starts[p], marks[p] = max(stored.get(p, 0), low), high
        if stored.get(p, 0) < low:
            log.warning(
                "%s %s[%d]: offsets %d..%d were deleted by Kafka retention before being drained",
                sink,
                topic,
                p,
                stored.get(p, 0),
                low,
            )
    return starts, marks


def _run_chunks(
    reader: _Reader,
    writer: _ChunkWriter,
    spec: SinkSpec,
    settings: Settings,
    sink: str,
    topic: str,
    max_messages: int,
    deadline: float,
    result: DrainResult,
) -> tuple[Counter, int]:
    """Validate chunk k+1 while chunk k is written; returns (dead-letter kinds, duplicates)."""
    kinds: Counter = Counter()
    duplicates = 0
    seen: set = set()
    validator = EventValidator(settings) if spec.family else None
    pending: Future | None = None
    with (
        _short_gil_slices(),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{sink}") as pool,
    ):
        while True:
            batch = Batch.for_sink(
                spec, settings, sink=sink, topic=topic, seen=seen, validator=validator
            )
            limit = min(COMMIT_EVERY, max_messages - result.messages)
            reader.fill(batch, limit, deadline)
            result.messages += batch.messages
            kinds.update(batch.dead_letter_kinds)
            duplicates += batch.duplicates
            if pending is not None:
                pending.result()  # a failed write stops the run here
            pending = pool.submit(writer.write, batch, dict(reader.reached))
            if (
                not reader.pending
                or result.messages >= max_messages
                or time.monotonic() >= deadline
            ):
                break
        pending.result()
    return kinds, duplicates


@contextmanager
def _short_gil_slices(seconds: float = 0.001) -> Iterator[None]:
    """Hand the GIL over every `seconds` (Python's default: 5 ms) while the writer runs.

    The writer gives the GIL up on every send of COPY data and, with the default
    interval, waits up to 5 ms to get it back from the validating thread: 1.4 s
    instead of 1.8 s for 200,000 rows in benchmarks/sink_bench.py.
    """
    global _drains_running, _interval_before
    with _switch_lock:  # the interval is process-wide: the first drain in sets, the last out resets
        if _drains_running == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(seconds)
        _drains_running += 1
    try:
        yield
    finally:
        with _switch_lock:
            _drains_running -= 1
            if _drains_running == 0:
                sys.setswitchinterval(_interval_before)


_switch_lock = threading.Lock()
_drains_running = 0
_interval_before = sys.getswitchinterval()


_KNOWN_DAYS: dict[str, set] = {}


def _ensure_days(conn: psycopg.Connection, spec: SinkSpec, rows: list[tuple]) -> list[str]:
    """Native path: make sure a daily partition exists for every day this chunk touches."""
    index = spec.column_names.index(spec.time_column)
    days = {(t if t.tzinfo is UTC else t.astimezone(UTC)).date() for t in (r[index] for r in rows)}
    known = _KNOWN_DAYS.get(spec.table)
    if known is None or not days <= known:
        names = existing_partitions(conn, spec.table)
        known = {d for d in (migrations.partition_day(spec.table, n) for n in names) if d}
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
