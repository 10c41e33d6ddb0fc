"""KafkaResource: admin, producer and consumer clients from the one shared client config."""

from __future__ import annotations

import dagster as dg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from openpipe import kafka


class KafkaResource(dg.ConfigurableResource):
    """Kafka clients built from the one shared client config (openpipe.kafka)."""

    bootstrap_servers: str

    def admin(self) -> AdminClient:
        return kafka.admin_client(self.bootstrap_servers)

    def producer(self, **overrides: object) -> Producer:
        return kafka.make_producer(self.bootstrap_servers, **overrides)

    def consumer(self, group_id: str, **overrides: object) -> Consumer:
        return kafka.make_consumer(self.bootstrap_servers, group_id, **overrides)

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """Partition -> high watermark for one topic."""
        consumer = self.consumer("openpipe-watermarks")
        try:
            return kafka.high_watermarks(consumer, topic)
        finally:
            consumer.close()
