"""Kafka topics as external assets: the device topics and the Flink health-* topics (docs/architecture.md §7).

Nothing in Dagster materializes a topic; the `topic_observations` sensor records their
high watermarks and each sink's lag as observations. Sink assets depend on these keys
(`topic_asset_key`), which puts the topics between the services and the tables in the graph.
"""

import dagster as dg

from openpipe.config import Settings
from openpipe.events import COMMON_FIELDS, FAMILIES, FAMILY_FIELDS, METRIC_FIELDS
from openpipe.sinks import SINKS

OWNERS = ["team:platform"]
SIMULATOR_SERVICE = dg.AssetKey("simulator_service")
FLINK_HEALTH_JOB = dg.AssetKey("flink_health_job")
_DAGSTER_TYPES = {
    "uuid": "uuid",
    "timestamptz": "timestamp (RFC 3339 text)",
    "text": "string",
    "int4": "int",
    "int8": "bigint",
    "float8": "float",
    "jsonb": "json array",
}
_EVENT_ONLY = {"schema_version": "int", "device_type": "string"}
_KAFKA_COLUMNS = {"kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"}


def topic_asset_key(topic: str) -> dg.AssetKey:
    """The asset key of a Kafka topic: kafka/<topic with '-' as '_'>."""
    return dg.AssetKey(["kafka", topic.replace("-", "_")])


def _sink_for(topic_key: str):
    return next(spec for spec in SINKS.values() if spec.topic_key == topic_key)


def message_schema(topic_key: str) -> dg.TableSchema:
    """The JSON fields of the topic's messages, typed like the table they land in."""
    spec = _sink_for(topic_key)
    types = dict(spec.columns)
    if spec.family:
        fields = list(FAMILY_FIELDS[spec.family])
        if spec.family == "wearables":
            fields += [f for metric in METRIC_FIELDS.values() for f in metric]
    else:
        fields = [name for name, _ in spec.columns if name not in _KAFKA_COLUMNS]
    columns = []
    for name in fields:
        kind = _EVENT_ONLY.get(name) or _DAGSTER_TYPES[types[name]]
        note = "common event field" if name in COMMON_FIELDS else ""
        columns.append(dg.TableColumn(name, kind, description=note))
    return dg.TableSchema(columns=columns)


def topic_specs(settings: Settings) -> list[dg.AssetSpec]:
    """One external asset per configured topic, fed by the simulator or by the Flink job."""
    specs = []
    for topic_key, topic in settings.kafka.topics.model_dump().items():
        device = topic_key in FAMILIES
        producer = SIMULATOR_SERVICE if device else FLINK_HEALTH_JOB
        table = _sink_for(topic_key).table
        what = (
            f"{topic_key} device events from the simulator (key device_id; faulty messages "
            "carry the openpipe-fault header)"
            if device
            else f"Flink window results for {table}, upserted downstream"
        )
        specs.append(
            dg.AssetSpec(
                key=topic_asset_key(topic),
                group_name="raw" if device else "stream",
                kinds={"kafka"},
                owners=OWNERS,
                deps=[producer, dg.AssetKey("kafka_topics")],
                description=(
                    f"Kafka topic `{topic}`: {what}. Drained into `{table}`. Observed every "
                    f"{settings.analytics.observation_interval_s}s: high watermarks and the "
                    "lag of every sink reading it."
                ),
                metadata={
                    "dagster/column_schema": message_schema(topic_key),
                    "kafka/topic": topic,
                    "kafka/partitions": settings.kafka.partitions,
                    "sink_table": table,
                },
            )
        )
    return specs
