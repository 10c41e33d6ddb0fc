"""`openpipe kafka tail` and `openpipe kafka topics`: look at Kafka from the shell.

Built on the SQL viewer's Kafka view (watermarks, message decoding, per-sink lag), so the
shell and the viewer show the same figures. Nothing here joins a consumer group or
commits an offset: looking never moves a sink or the Flink job.
"""

from __future__ import annotations

import itertools
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from openpipe.config import Settings
from sql_viewer.catalogue import sink_offsets
from sql_viewer.encode import decode_message
from sql_viewer.kafka_view import KafkaUnavailable, KafkaView, TopicNotFound
from sql_viewer.routers.kafka import topic_summaries
from sql_viewer.runner import QueryFailed, QueryRunner

FLINK_PREFIX = "flink:"


def start_offsets(
    marks: dict[int, tuple[int, int]], *, from_beginning: bool, last: int
) -> dict[int, int]:
    """Where to start reading each partition: the low watermark, or `last` before the end."""
    if from_beginning:
        return {p: low for p, (low, _) in marks.items()}
    # The newest `last` messages of the topic are among the newest `last` of each partition.
    return {p: max(low, high - last) for p, (low, high) in marks.items()}


def format_message(topic: str, message: dict[str, Any], value: bytes | None) -> str:
    """One message for a terminal: a header line (where, when, key, headers), then the value."""
    headers = " ".join(f"{h['key']}={h['value']}" for h in message["headers"])
    head = (
        f"{topic}/{message['partition']}@{message['offset']}  {message['timestamp'] or '-'}"
        f"  key={message['key']}" + (f"  headers: {headers}" if headers else "")
    )
    return f"{head}\n{pretty_value(value)}"


def pretty_value(value: bytes | None) -> str:
    """JSON indented by two spaces; other text as it is; binary as its repr."""
    if value is None:
        return "(null)"
    try:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)


def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    follow: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Print the last messages (10 unless --max) or all from the beginning; follow for new ones.

    From the end, the messages are shown in time order across partitions; from the
    beginning, as they come (each partition in order). --max caps what is printed in all.
    """
    last = max_messages or 10
    limit = max_messages if (from_beginning or follow) else last
    consumer = Consumer(_consumer_config(settings, "openpipe-kafka-tail"))
    printed = 0
    try:
        marks = _watermarks(consumer, topic, settings.viewer.kafka_timeout_s)
        starts = start_offsets(marks, from_beginning=from_beginning, last=last)
        ends = {p: high for p, (_, high) in marks.items()}
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        later: list[Any] = []  # read past the end while catching up: the first of follow
        backlog = _read_backlog(consumer, starts, ends, settings.viewer.kafka_timeout_s, later)
        if not from_beginning:
            newest = sorted(backlog, key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
            backlog = iter(newest[-last:])
        for message in itertools.chain(backlog, _follow(consumer, later) if follow else ()):
            if limit is not None and printed >= limit:
                break
            _print(out, topic, message)
            printed += 1
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka did not answer: {exc}; check `openpipe status`") from None
    finally:
        consumer.close()
    return printed


def topics(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Each topic's partitions and high watermarks, and each sink's and the Flink job's lag."""
    view = KafkaView(settings.kafka, settings.viewer)
    watermarks = view.topics()
    offsets = list(_sink_offsets(settings, out) or [])
    offsets += flink_offsets(settings, watermarks)
    for summary in topic_summaries(watermarks, offsets, view.configured_topics):
        marks = ", ".join(f"p{p['partition']}={p['high']}" for p in summary["partitions"])
        extra = "" if summary["configured"] else "  (not in config)"
        print(f"{summary['name']}{extra}", file=out)
        print(f"  high watermarks: {marks}  ({summary['messages']} messages kept)", file=out)
        if not summary["sinks"]:
            print("  no sink or Flink job has stored an offset for it", file=out)
        for reader in summary["sinks"]:
            name = reader["sink"]
            label = (
                f"Flink job {name[len(FLINK_PREFIX) :]}"
                if name.startswith(FLINK_PREFIX)
                else f"sink {name}"
            )
            lags = ", ".join(f"p{p['partition']}={p['lag']}" for p in reader["partitions"])
            print(f"  {label}: lag {reader['lag']} ({lags})", file=out)


def flink_offsets(
    settings: Settings, watermarks: dict[str, list[Any]]
) -> list[tuple[str, str, int, int]]:
    """The Flink job's committed offsets (its consumer group is the job name), as sink rows.

    Flink commits them on each completed checkpoint, so its lag here is at most one
    checkpoint interval behind what the job has read.
    """
    group = settings.flink.job_name
    consumer = Consumer(_consumer_config(settings, group))
    try:
        wanted = [
            TopicPartition(topic, p.partition) for topic, parts in watermarks.items() for p in parts
        ]
        committed = consumer.committed(wanted, timeout=settings.viewer.kafka_timeout_s)
    except KafkaException:
        return []
    finally:
        consumer.close()
    return [
        (f"{FLINK_PREFIX}{group}", tp.topic, tp.partition, tp.offset)
        for tp in committed
        if tp.error is None and tp.offset >= 0
    ]


def _sink_offsets(settings: Settings, out: TextIO) -> list[tuple[str, str, int, int]] | None:
    runner = QueryRunner(settings.database, settings.viewer)
    try:
        runner.open()
        return sink_offsets(runner)
    except QueryFailed as exc:
        print(f"(sink offsets unavailable: {exc.message})", file=out)
        return None
    finally:
        runner.close()


def _consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "allow.auto.create.topics": False,
        "log_level": 3,
    }


def _watermarks(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    metadata = consumer.list_topics(topic=topic, timeout=timeout_s)
    entry = metadata.topics.get(topic)
    if entry is None or entry.error is not None or not entry.partitions:
        raise TopicNotFound(f"no topic named {topic!r}; `openpipe kafka topics` lists them")
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)
        for p in sorted(entry.partitions)
    }


def _read_backlog(
    consumer: Consumer,
    starts: dict[int, int],
    ends: dict[int, int],
    timeout_s: float,
    later: list[Any],
) -> Iterator[Any]:
    """The messages from the start offsets up to the high watermarks seen at the start."""
    pending = {p for p in starts if ends[p] > starts[p]}
    quiet_until = time.monotonic() + max(timeout_s, 5)
    while pending and time.monotonic() < quiet_until:
        for message in consumer.consume(num_messages=500, timeout=0.2):
            quiet_until = time.monotonic() + max(timeout_s, 5)
            if message.error():
                continue
            partition = message.partition()
            if message.offset() < ends[partition]:
                yield message
            else:
                later.append(message)
            # Transaction markers occupy offsets too, so "reached" means >= high - 1.
            if message.offset() >= ends[partition] - 1:
                pending.discard(partition)


def _follow(consumer: Consumer, already_read: list[Any]) -> Iterator[Any]:
    """New messages as they arrive, until Ctrl-C or SIGTERM."""
    yield from already_read
    running = [True]
    previous = signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    try:
        while running[0]:
            try:
                message = consumer.poll(0.5)
            except KeyboardInterrupt:
                return
            if message is not None and not message.error():
                yield message
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print(out: TextIO, topic: str, message: Any) -> None:
    _, timestamp_ms = message.timestamp()
    shown = decode_message(
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=timestamp_ms,
        key=message.key(),
        value=None,
        headers=message.headers(),
    )
    print(format_message(topic, shown, message.value()), file=out, flush=True)
