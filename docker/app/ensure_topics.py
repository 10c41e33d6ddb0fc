"""Create the configured Kafka topics, then exit: the `kafka-topics` service of docker-compose.yml.

The broker does not auto-create topics, and the simulator, the sinks and the Flink job
expect theirs to exist. `openpipe up` creates them for the local stack; in compose this
runs once, after the broker is healthy and before any service that uses Kafka starts.
Names, partitions and replication factor come from the settings, through the same
`openpipe.kafka.ensure_topics` as the `kafka_topics` asset. Run it again at any time:
topics that exist are kept (and grown to the configured partitions).
"""

from __future__ import annotations

import logging
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from openpipe import kafka
from openpipe.config import ConfigError, Settings, load_settings

log = logging.getLogger("openpipe.ensure_topics")

# The broker reports healthy once it answers API requests; its controller may need a
# few more seconds before it accepts topic creation.
RETRY_FOR_S = 60.0


def ensure_configured_topics(settings: Settings, admin: AdminClient) -> dict[str, bool]:
    """Every topic in `settings.kafka.topics`, created when missing; name -> created."""
    k = settings.kafka
    return kafka.ensure_topics(admin, k.topics.all(), k.partitions, k.replication_factor)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            created = ensure_configured_topics(settings, admin)
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                log.error(
                    "could not create the topics on %s after %.0f s: %s",
                    settings.kafka.bootstrap_servers,
                    RETRY_FOR_S,
                    exc,
                )
                return 1
            log.warning("Kafka is not ready for topic creation yet (%s); retrying", exc)
            time.sleep(2)
    for name, new in created.items():
        log.info(
            "%s: %s (%d partitions, replication factor %d)",
            name,
            "created" if new else "exists",
            settings.kafka.partitions,
            settings.kafka.replication_factor,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
