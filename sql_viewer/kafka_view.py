"""Read-only Kafka adapter: topics, partitions, watermarks, and the latest messages.

Nothing here commits offsets or joins a consumer group: partitions are assigned by
hand, so looking at a topic never moves any sink's position.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from openpipe.config import KafkaSettings, ViewerSettings
from sql_viewer.encode import decode_message

logger = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """The broker did not answer in time."""


class TopicNotFound(LookupError):
    """No such topic on the broker."""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    low: int
    high: int


class KafkaView:
    """Opens a short-lived, group-less consumer per call (the viewer is low-traffic)."""

    def __init__(self, kafka: KafkaSettings, viewer: ViewerSettings) -> None:
        self.timeout_s = viewer.kafka_timeout_s
        self.message_limit = viewer.kafka_message_limit
        self.configured_topics = kafka.topics.all()
        self._config = {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": "openpipe-sql-viewer",
            "client.id": "openpipe-sql-viewer",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "allow.auto.create.topics": False,
            "socket.timeout.ms": int(self.timeout_s * 1000),
            "log_level": 3,
        }

    def topics(self) -> dict[str, list[PartitionInfo]]:
        """Each non-internal topic's partitions with low and high watermarks."""
        consumer = self._consumer()
        try:
            metadata = consumer.list_topics(timeout=self.timeout_s)
            result = {}
            for name in sorted(metadata.topics):
                if name.startswith("__"):
                    continue
                partitions = sorted(metadata.topics[name].partitions)
                result[name] = [self._watermarks(consumer, name, p) for p in partitions]
            return result
        except KafkaException as exc:
            raise KafkaUnavailable(_broker_message(exc)) from None
        finally:
            consumer.close()

    def ping(self) -> int:
        """Fetch cluster metadata; returns the broker count or raises `KafkaUnavailable`."""
        consumer = self._consumer()
        try:
            return len(consumer.list_topics(timeout=min(self.timeout_s, 3.0)).brokers)
        except KafkaException as exc:
            raise KafkaUnavailable(_broker_message(exc)) from None
        finally:
            consumer.close()

    def latest_messages(self, topic: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages across the topic's partitions, newest first."""
        consumer = self._consumer()
        try:
            metadata = consumer.list_topics(topic=topic, timeout=self.timeout_s)
            entry = metadata.topics.get(topic)
            if entry is None or entry.error is not None or not entry.partitions:
                raise TopicNotFound(f"no topic named {topic!r}; GET /api/kafka/topics lists them")
            ends: dict[int, int] = {}
            assignment = []
            for partition in sorted(entry.partitions):
                marks = self._watermarks(consumer, topic, partition)
                start = max(marks.low, marks.high - limit)
                if marks.high > start:
                    ends[partition] = marks.high
                    assignment.append(TopicPartition(topic, partition, start))
            messages = self._read_until(consumer, assignment, ends)
        except KafkaException as exc:
            raise KafkaUnavailable(_broker_message(exc)) from None
        finally:
            consumer.close()
        messages.sort(key=lambda m: (m["timestamp"] or "", m["partition"], m["offset"]))
        return messages[::-1][:limit]

    def _read_until(
        self, consumer: Consumer, assignment: list[TopicPartition], ends: dict[int, int]
    ) -> list[dict[str, Any]]:
        if not assignment:
            return []
        consumer.assign(assignment)
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.timeout_s
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.2):
                if message.error():
                    logger.warning("kafka view: %s", message.error())
                    continue
                partition, offset = message.partition(), message.offset()
                _, timestamp_ms = message.timestamp()
                messages.append(
                    decode_message(
                        partition=partition,
                        offset=offset,
                        timestamp_ms=timestamp_ms,
                        key=message.key(),
                        value=message.value(),
                        headers=message.headers(),
                    )
                )
                # Transaction markers occupy offsets too, so "reached" means >= high - 1.
                if partition in ends and offset >= ends[partition] - 1:
                    del ends[partition]
        if ends:
            logger.info("kafka view: stopped reading %s before its high watermark", sorted(ends))
        return messages

    def _watermarks(self, consumer: Consumer, topic: str, partition: int) -> PartitionInfo:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=self.timeout_s, cached=False
        )
        return PartitionInfo(partition, low, high)

    def _consumer(self) -> Consumer:
        return Consumer(self._config)


def _broker_message(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else exc
    detail = error.str() if hasattr(error, "str") else str(error)
    return f"Kafka did not answer: {detail}; check `openpipe status`"
