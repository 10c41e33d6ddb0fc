"""Sink sessions: micro-batches from a Kafka topic into its table, each with exactly-once effect.

A `SinkSession` keeps one consumer, one database connection and one advisory lock per
partition it drains (its shard: partitions with p % pipeline.sink_shards == shard) for
its whole life. It reads the stored offsets once, seeks there, and then takes micro-batch
after micro-batch: what has arrived (waiting at most pipeline.poll_ms when idle), committed
in chunks of COMMIT_EVERY messages; each chunk's rows, dead letters and new offsets go in
one transaction, written by a helper thread while the next chunk is validated (ordered, at
most one in flight). `run()` returns after the transaction in flight once its deadline
passes or `stop` is set (SIGTERM, a Dagster termination), or, given targets, once it has
reached them. `drain_topic` is one session that stops at the high watermarks seen at its
start (the CLI, the safety net, tests and benchmarks).

Database and Kafka failures propagate (the run fails and is retried); only bad messages
become dead letters. A stored offset above the topic's high watermark (the topic was
recreated, or the broker lost its data) fails the session with `OffsetsAheadOfTopic`
instead of silently skipping new messages.
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
from openpipe.config import Settings
from openpipe.events import EventValidator
from openpipe.sinks.batch import Batch
from openpipe.sinks.intervals import ChunkReport, IntervalReport, IntervalStats, sample_ages
from openpipe.sinks.specs import SinkSpec
from openpipe.sinks.writer import crash_point, read_offsets, write_batch
from openpipe.storage import migrations
from openpipe.storage.db import advisory_unlock, try_advisory_lock
from openpipe.storage.schema import ensure_partitions, existing_partitions, read_storage

log = logging.getLogger(__name__)
#: Messages per transaction. Small enough that writing one chunk overlaps validating
#: the next; large enough that per-transaction overhead stays under a few percent.
COMMIT_EVERY = 10_000
_CONSUME_CHUNK = 5_000
#: Longest a consume call blocks: how soon a stop request is seen while idle.
_STOP_CHECK_S = 0.25


class OffsetsAheadOfTopic(RuntimeError):
    """A stored offset is above its partition's high watermark: Kafka lost what the sink stored."""

    def __init__(self, sink: str, topic: str, ahead: dict[int, tuple[int, int]]) -> None:
        self.sink, self.topic, self.ahead = sink, topic, ahead
        where = "; ".join(
            f"partition {p}: stored next offset {stored}, high watermark {high}"
            for p, (stored, high) in sorted(ahead.items())
        )
        super().__init__(
            f"sink {sink}: the offsets stored in sink_offsets for topic {topic} are above the "
            f"topic's high watermark ({where}). Kafka no longer holds messages this sink "
            "already stored (the topic was deleted and recreated, or the broker lost its "
            "data), so new messages would be skipped silently until the offsets pass the "
            "stored ones. Nothing was read. Choose how to resume, then the next run drains: "
            f"`openpipe sinks reset-offsets {sink} --to earliest` (re-read what the topic holds "
            "now; events already stored are not written twice), `--to latest` (skip to new "
            "messages) or `--to stored-max` (lower only these partitions to their high "
            "watermark); add --dry-run to see the change first."
        )


@dataclass
class DrainResult:
    """What one session or drain did; becomes the asset's materialization metadata."""

    sink: str
    topic: str
    storage: str = ""
    skipped_reason: str | None = None
    partitions: list[int] = field(default_factory=list)
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
    stopped: bool = False  # ended early on request (SIGTERM, Dagster termination)

    @property
    def rows_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_lag(self) -> int:
        return sum(self.lag_after.values())


def lock_name(sink: str, topic: str, partition: int) -> str:
    """The advisory lock that lets only one writer drain `partition` of `topic` into `sink`.

    One lock per partition, not per shard: sessions of different shard counts (while
    pipeline.sink_shards changes) still never write the same partition at once.
    """
    return f"openpipe.sink:{sink}:{topic}:{partition}"


def shard_partitions(partitions: list[int], shard: int, shards: int) -> list[int]:
    """The partitions shard `shard` of `shards` drains: p % shards == shard."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1} (pipeline.sink_shards)")
    return [p for p in sorted(partitions) if p % shards == shard]


def partition_lag(stored: dict[int, int], marks: dict[int, int]) -> dict[int, int]:
    """Partition -> messages between the stored offset and the high watermark."""
    return {p: max(0, high - stored.get(p, 0)) for p, high in marks.items()}


def offsets_ahead(stored: dict[int, int], marks: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Partition -> (stored, high watermark) where the stored offset is above the mark."""
    return {p: (stored[p], high) for p, high in marks.items() if stored.get(p, 0) > high}


class _Reader:
    """Consumes assigned partitions from given offsets; up to targets when given."""

    def __init__(self, consumer: Consumer, topic: str, starts: dict[int, int], targets=None):
        self.consumer, self.topic, self.targets = consumer, topic, targets
        self.reached = dict(starts)
        if targets is None:
            self.pending = set(starts)
        else:
            self.pending = {p for p in targets if self.reached[p] < targets[p]}
        self.timestamps: list[int] = []  # of the batch being filled, for freshness
        consumer.assign([TopicPartition(topic, p, self.reached[p]) for p in sorted(self.pending)])

    def fill(self, batch: Batch, limit: int, until: float, stop: threading.Event) -> None:
        """Add up to `limit` messages to `batch` until `until`, the targets or a stop request."""
        self.timestamps = []
        while self.pending and batch.messages < limit and not stop.is_set():
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            chunk = self.consumer.consume(
                num_messages=min(_CONSUME_CHUNK, limit - batch.messages),
                timeout=min(remaining, _STOP_CHECK_S),
            )
            for msg in chunk:
                self._add(batch, msg)
            if not chunk and self.targets is not None and self.pending:
                self.skip_gaps()

    def _add(self, batch: Batch, msg) -> None:
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(error)
        partition, offset = msg.partition(), msg.offset()
        if partition not in self.pending:
            return
        if self.targets is not None and offset >= self.targets[partition]:
            return  # past the high watermark seen at start: the next run's work
        if offset < self.reached[partition]:
            # The consumer went back (offset reset): the partition lost what we stored.
            raise OffsetsAheadOfTopic(
                batch.sink, self.topic, {partition: (self.reached[partition], offset)}
            )
        timestamp = msg.timestamp()[1]
        batch.add(partition, offset, msg.key(), msg.value(), timestamp, msg.headers())
        self.timestamps.append(timestamp)
        self.reached[partition] = offset + 1
        if self.targets is not None and offset + 1 >= self.targets[partition]:
            self.pending.discard(partition)

    def skip_gaps(self) -> None:
        """Offsets can have gaps (compaction, transaction markers): trust the position."""
        for tp in self.consumer.position([TopicPartition(self.topic, p) for p in self.pending]):
            if tp.offset < 0 or tp.offset <= self.reached[tp.partition]:
                continue
            target = self.targets[tp.partition] if self.targets is not None else tp.offset
            self.reached[tp.partition] = min(tp.offset, target)
            if self.targets is not None and tp.offset >= target:
                self.pending.discard(tp.partition)


class _ChunkWriter:
    """Writes chunks in order on one connection; tracks what is committed."""

    def __init__(self, conn, spec: SinkSpec, sink: str, topic: str, storage: str, stored: dict):
        self.conn, self.spec, self.sink, self.topic, self.storage = conn, spec, sink, topic, storage
        self.committed: dict[int, int] = dict(stored)
        self.staged = 0
        self.partitions_created: list[str] = []

    def write(self, batch: Batch, reached: dict[int, int], timestamps: list[int]):
        """Commit one chunk (rows, dead letters and offsets together); None if nothing moved."""
        advanced = {p: n for p, n in reached.items() if n != self.committed.get(p)}
        if not advanced:
            return None
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
        staged = bool(rows) and not result.copied_directly
        self.staged += staged
        self.committed.update(advanced)
        return ChunkReport(
            messages=batch.messages,
            rows_written=result.rows_written,
            duplicates_dropped=batch.duplicates + result.conflicts,
            dead_letters=dict(batch.dead_letter_kinds),
            committed=dict(advanced),
            ages_s=sample_ages(timestamps, time.time() * 1000),
            via_staging=staged,
        )


class SinkSession:
    """One consumer, one connection and the shard's partition locks, for a whole run.

    Use as a context manager: entering takes the locks (waiting up to `lock_wait_s` for a
    predecessor to let go) and seeks the stored offsets; leaving releases everything.
    """

    def __init__(
        self,
        spec: SinkSpec,
        settings: Settings,
        *,
        connect: Callable[[], psycopg.Connection],
        make_consumer: Callable[[str], Consumer],
        sink: str | None = None,
        topic: str | None = None,
        shard: int = 0,
        shards: int | None = None,
        stop: threading.Event | None = None,
        lock_wait_s: float = 0.0,
    ) -> None:
        self.spec, self.settings = spec, settings
        self.sink = sink or spec.table
        self.topic = topic or spec.topic(settings)
        self.shard, self.shards = shard, shards or settings.pipeline.sink_shards
        self.stop = stop or threading.Event()
        self.lock_wait_s = lock_wait_s
        self._connect, self._make_consumer = connect, make_consumer
        self.result = DrainResult(sink=self.sink, topic=self.topic)
        self.conn: psycopg.Connection | None = None
        self.consumer: Consumer | None = None
        self.locked: list[int] = []
        self.marks: dict[int, tuple[int, int]] = {}
        self.starts: dict[int, int] = {}
        self.stored: dict[int, int] = {}
        self.intervals = IntervalStats(settings.pipeline.materialization_interval_s, 0.0)
        self._writer: _ChunkWriter | None = None

    # -- opening and closing -------------------------------------------------------------

    def __enter__(self) -> SinkSession:
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _open(self) -> None:
        self.conn = self._connect()
        self.consumer = self._make_consumer(f"openpipe-sink-{self.sink}")
        marks = kafka_helpers.watermarks(self.consumer, self.topic)
        partitions = shard_partitions(list(marks), self.shard, self.shards)
        self.result.partitions = partitions
        if not partitions:
            self.result.skipped_reason = (
                f"shard {self.shard} of {self.shards} has no partitions ({self.topic} has "
                f"{len(marks)}): lower pipeline.sink_shards to at most the partition count"
            )
            return
        if not self._take_locks(partitions):
            return
        self.result.storage = read_storage(self.conn)
        stored = read_offsets(self.conn, self.sink, self.topic)
        # Marks again, read after the offsets, now that no other session can move them: a
        # predecessor that held the locks while this session waited stored offsets past
        # the marks read before (a false "offsets ahead of the topic").
        marks = kafka_helpers.watermarks(self.consumer, self.topic)
        self.marks = {p: marks[p] for p in partitions}
        ahead = offsets_ahead(stored, {p: high for p, (_, high) in self.marks.items()})
        if ahead:
            raise OffsetsAheadOfTopic(self.sink, self.topic, ahead)
        self.starts = _start_positions(self.sink, self.topic, stored, self.marks)
        self.stored = {p: stored[p] for p in partitions if p in stored}

    def _take_locks(self, partitions: list[int]) -> bool:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            for p in partitions:
                if p not in self.locked:
                    if not try_advisory_lock(self.conn, lock_name(self.sink, self.topic, p)):
                        break
                    self.locked.append(p)
            else:
                return True
            if time.monotonic() >= deadline or self.stop.is_set():
                self._release_locks()
                self.result.skipped_reason = (
                    f"another session holds the lock of {self.topic}[{p}] for {self.sink}"
                )
                log.warning("%s: %s; skipping", self.sink, self.result.skipped_reason)
                return False
            self.stop.wait(min(self.settings.pipeline.poll_ms / 1000, 1.0))

    def _release_locks(self) -> None:
        conn = self.conn
        if conn is not None and not conn.closed and not conn.broken:
            for p in self.locked:
                advisory_unlock(conn, lock_name(self.sink, self.topic, p))
        self.locked = []

    def _close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        try:
            self._release_locks()
        finally:
            if self.conn is not None:
                self.conn.close()  # also releases any lock PostgreSQL still holds for us
                self.conn = None

    # -- draining --------------------------------------------------------------------------

    @property
    def skipped(self) -> bool:
        return self.result.skipped_reason is not None

    def run(
        self,
        *,
        seconds: float | None = None,
        to_marks: bool = False,
        max_messages: int | None = None,
        interval_s: float | None = None,
        on_interval: Callable[[IntervalReport], None] | None = None,
    ) -> DrainResult:
        """Drain until `seconds` pass, a stop request, or (to_marks) the marks seen at start.

        `on_interval` gets an IntervalReport every `interval_s` in which something was
        written, on the calling thread; the last (partial) interval is the caller's to take
        with `final_interval()`.
        """
        result = self.result
        if self.skipped:  # e.g. stopped while it waited for a predecessor's locks
            result.stopped = self.stop.is_set()
            return result
        started = time.monotonic()
        deadline = started + (
            seconds if seconds is not None else self.settings.pipeline.session_seconds
        )
        max_messages = max_messages or (self.settings.pipeline.batch_size if to_marks else None)
        targets = {p: high for p, (_, high) in self.marks.items()} if to_marks else None
        reader = _Reader(self.consumer, self.topic, self.starts, targets)
        writer = _ChunkWriter(
            self.conn, self.spec, self.sink, self.topic, result.storage, self.stored
        )
        self.intervals = IntervalStats(
            interval_s or self.settings.pipeline.materialization_interval_s, started
        )
        self._writer = writer
        try:
            self._loop(reader, writer, deadline, max_messages, on_interval)
        finally:
            result.stopped = self.stop.is_set()
            result.staged_transactions = writer.staged
            result.partitions_created = writer.partitions_created
            result.offset_ranges = {
                p: (self.starts[p], n)
                for p, n in sorted(writer.committed.items())
                if p in self.starts and n > self.starts[p]
            }
            result.seconds = time.monotonic() - started
        self.consumer.pause(self.consumer.assignment())  # no more fetches: marks answer at once
        result.lag_after = self.lag_after()
        if result.transactions:
            _commit_to_kafka(self.consumer, self.topic, writer.committed)
        log.info(
            "%s: %d messages from %s%s -> %d rows, %d duplicates, %d dead letters, %d tx in %.2f s",
            self.sink,
            result.messages,
            self.topic,
            result.partitions,
            result.rows_written,
            result.duplicates_dropped,
            sum(result.dead_letters.values()),
            result.transactions,
            result.seconds,
        )
        return result

    def _loop(self, reader, writer, deadline, max_messages, on_interval) -> None:
        settings = self.settings
        poll_s = settings.pipeline.poll_ms / 1000
        validator = EventValidator(settings) if self.spec.family else None
        seen: set = set()
        read = 0  # messages read, written or not yet
        pending: Future | None = None
        with (
            _short_gil_slices(),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{self.sink}") as pool,
        ):
            try:
                now = time.monotonic()
                while True:
                    if len(seen) > settings.pipeline.batch_size:
                        seen = set()  # bounded memory; the writer finds ids stored earlier
                    batch = Batch.for_sink(
                        self.spec,
                        settings,
                        sink=self.sink,
                        topic=self.topic,
                        seen=seen,
                        validator=validator,
                    )
                    limit = COMMIT_EVERY
                    if max_messages is not None:
                        limit = min(limit, max_messages - read)
                    # A session commits what came within poll_ms (a backlog fills a chunk
                    # at once); a drain to the marks fills whole chunks.
                    until = deadline if reader.targets is not None else now + poll_s
                    reader.fill(batch, limit, min(deadline, until), self.stop)
                    read += batch.messages
                    if not batch.messages and reader.targets is None:
                        reader.skip_gaps()  # idle: step over transaction markers
                    if pending is not None:
                        self._collect(pending.result())  # a failed write stops the run here
                    pending = pool.submit(
                        writer.write, batch, dict(reader.reached), reader.timestamps
                    )
                    now = time.monotonic()
                    if on_interval is not None and self.intervals.due(now):
                        if pending is not None:
                            self._collect(pending.result())
                            pending = None
                        report = self.intervals.take(now, self.lag_after())
                        if report.wrote_something:
                            on_interval(report)
                    if (
                        self.stop.is_set()
                        or now >= deadline
                        or (reader.targets is not None and not reader.pending)
                        or (max_messages is not None and read >= max_messages)
                    ):
                        break
            finally:
                if pending is not None:
                    self._collect(pending.result())

    def _collect(self, report: ChunkReport | None) -> None:
        if report is None:
            return
        result = self.result
        result.messages += report.messages
        result.rows_written += report.rows_written
        result.duplicates_dropped += report.duplicates_dropped
        result.dead_letters = dict(Counter(result.dead_letters) + Counter(report.dead_letters))
        result.transactions += 1
        self.intervals.add(report)

    def final_interval(self) -> IntervalReport:
        """The interval since the last report (possibly empty): the session's last figures."""
        return self.intervals.take(time.monotonic(), self.result.lag_after or self.lag_after())

    def lag_after(self) -> dict[int, int]:
        """Partition -> lag now, from the marks the consumer's fetches carried (no round trip)."""
        committed = self._writer.committed if self._writer is not None else self.starts
        marks = kafka_helpers.high_watermarks(
            self.consumer, self.topic, list(self.marks), cached=True
        )
        return partition_lag(committed, marks)


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
    shard: int = 0,
    shards: int = 1,
) -> DrainResult:
    """Drain `topic` (default: the spec's) up to the high watermarks seen at start.

    One session bounded by pipeline.batch_size messages and pipeline.max_batch_seconds.
    `connect` must return an autocommit connection (transactions are explicit).
    """
    session = SinkSession(
        spec,
        settings,
        connect=connect,
        make_consumer=make_consumer,
        sink=sink,
        topic=topic,
        shard=shard,
        shards=shards,
    )
    with session:
        return session.run(
            seconds=max_seconds or settings.pipeline.max_batch_seconds,
            to_marks=True,
            max_messages=max_messages,
        )


def _start_positions(
    sink: str, topic: str, stored: dict[int, int], marks: dict[int, tuple[int, int]]
) -> dict[int, int]:
    """Start offset per partition; skips what Kafka retention deleted (with a warning)."""
    starts = {}
    for p, (low, _high) in marks.items():
        starts[p] = max(stored.get(p, 0), low)
        if stored.get(p, 0) < low:
            log.warning(
                "%s %s[%d]: offsets %d..%d were deleted by Kafka retention before being drained",
                sink,
                topic,
                p,
                stored.get(p, 0),
                low,
            )
    return starts


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


#: (database, table) -> the days it has a partition for, as this process last read them.
#: Retention drops only days older than any row a sink still writes (docs/architecture.md §5).
_KNOWN_DAYS: dict[tuple[str, str], set] = {}


def _ensure_days(conn: psycopg.Connection, spec: SinkSpec, rows: list[tuple]) -> list[str]:
    """Native path: make sure a daily partition exists for every day this chunk touches."""
    index = spec.column_names.index(spec.time_column)
    days = {(t if t.tzinfo is UTC else t.astimezone(UTC)).date() for t in (r[index] for r in rows)}
    key = (conn.info.dbname, spec.table)
    known = _KNOWN_DAYS.get(key)
    if known is None or not days <= known:
        names = existing_partitions(conn, spec.table)
        known = {d for d in (migrations.partition_day(spec.table, n) for n in names) if d}
        _KNOWN_DAYS[key] = known
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
