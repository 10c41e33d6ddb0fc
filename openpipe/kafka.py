"""Kafka client factories and topic helpers shared by every component."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from openpipe.config import KafkaSettings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


def producer_config(bootstrap_servers: str, kafka: KafkaSettings | None = None) -> dict[str, Any]:
    """The one producer config: idempotent, acks=all, batching tuned from settings."""
    tuning = (kafka or KafkaSettings()).producer
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": tuning.linger_ms,
        "batch.size": tuning.batch_size,
        "compression.type": tuning.compression_type,
    }


def consumer_config(bootstrap_servers: str, group_id: str) -> dict[str, Any]:
    """Consumer config for sinks and tools: offsets are managed by the caller, never auto-committed."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # The health-* topics are written in Flink's Kafka transactions: read only what
        # committed, never the records of an aborted one (librdkafka's default, made explicit).
        "isolation.level": "read_committed",
        # librdkafka's 1 MiB per partition and fetch made draining a backlog 3-4x slower
        # (benchmarks/sink_bench.py); 8 MiB within a 32 MiB fetch keeps memory bounded.
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "fetch.max.bytes": 32 * 1024 * 1024,
        # A fetch waiting for new data holds up every other request on its connection
        # (watermark queries at the end of a sink run waited 500 ms, the default).
        "fetch.wait.max.ms": 100,
    }


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


def make_producer(
    bootstrap_servers: str, kafka: KafkaSettings | None = None, **overrides: Any
) -> Producer:
    return Producer({**producer_config(bootstrap_servers, kafka), **overrides})


def produce_waiting(producer: Producer, topic: str, **message: Any) -> None:
    """`producer.produce(topic, **message)`, serving delivery reports while librdkafka's
    local queue is full (back-pressure instead of a BufferError)."""
    while True:
        try:
            producer.produce(topic, **message)
            return
        except BufferError:
            producer.poll(0.1)


def produce_all(producer: Producer, topic: str, messages: Iterable, timestamp_ms: int) -> list:
    """Produce (key, value, headers) messages, waiting while the local queue is full, then
    flush; returns the delivery errors (empty when Kafka acknowledged every message)."""
    failures: list = []
    for key, value, headers in messages:
        produce_waiting(
            producer,
            topic,
            key=key,
            value=value,
            headers=headers,
            timestamp=timestamp_ms,
            on_delivery=lambda err, _msg: err and failures.append(err),
        )
        producer.poll(0)
    if producer.flush(60):
        failures.append("messages still queued after 60 s")
    return failures


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer({**consumer_config(bootstrap_servers, group_id), **overrides})


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    created: bool
    high_watermarks: dict[int, int]

    @property
    def total_messages(self) -> int:
        return sum(self.high_watermarks.values())


def ensure_topics(
    admin: AdminClient, names: list[str], partitions: int, replication_factor: int
) -> dict[str, bool]:
    """Create missing topics and grow ones with too few partitions; returns name -> created."""
    existing = admin.list_topics(timeout=TIMEOUT_S).topics
    created: dict[str, bool] = {}
    missing = [n for n in names if n not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(n, num_partitions=partitions, replication_factor=replication_factor)
                for n in missing
            ],
            operation_timeout=TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
            created[name] = True
    too_small = [n for n in names if n in existing and len(existing[n].partitions) < partitions]
    if too_small:
        for future in admin.create_partitions(
            [NewPartitions(n, partitions) for n in too_small], operation_timeout=TIMEOUT_S
        ).values():
            future.result()
        log.info("grew %s to %d partitions", ", ".join(too_small), partitions)
    return {n: created.get(n, False) for n in names}


def watermarks(
    consumer: Consumer,
    topic: str,
    partitions: Iterable[int] | None = None,
    *,
    cached: bool = False,
) -> dict[int, tuple[int, int]]:
    """Partition -> (low, high) watermark of one topic.

    `partitions` saves a metadata round trip. `cached` takes the marks the consumer's
    last fetch responses carried (no round trip, which a consumer with a fetch in
    flight would wait on); partitions it never fetched are asked of the broker.
    """
    if partitions is None:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaException(f"topic {topic!r} is not available: {metadata and metadata.error}")
        partitions = metadata.partitions
    marks = {}
    for p in sorted(partitions):
        tp = TopicPartition(topic, p)
        low, high = consumer.get_watermark_offsets(tp, cached=True) if cached else (-1, -1)
        if low < 0 or high < 0:
            low, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S)
        marks[p] = (low, high)
    return marks


def high_watermarks(
    consumer: Consumer,
    topic: str,
    partitions: Iterable[int] | None = None,
    *,
    cached: bool = False,
) -> dict[int, int]:
    """Partition -> high watermark (the next offset to be written) for one topic."""
    marks = watermarks(consumer, topic, partitions, cached=cached)
    return {p: high for p, (_, high) in marks.items()}
