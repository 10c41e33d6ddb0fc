"""The topic_observations sensor: high watermarks and per-sink lag, as asset observations."""

import dagster as dg
import psycopg

from openpipe.config import Settings
from openpipe.sinks import SINKS
from openpipe_dagster.assets.topics import topic_asset_key
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource

OFFSETS_SQL = (
    "SELECT sink, kafka_partition, next_offset FROM sink_offsets WHERE kafka_topic = %s "
    "ORDER BY sink, kafka_partition"
)


def sink_lag(marks: dict[int, int], stored: dict[int, int]) -> dict[int, int]:
    """Messages not yet written, per partition (a partition never drained lags by all of it)."""
    return {p: max(0, high - stored.get(p, 0)) for p, high in marks.items()}


def observe_topic(
    topic: str, marks: dict[int, int], offsets: dict[str, dict[int, int]]
) -> dg.AssetObservation:
    """One observation: watermarks, message count and the lag of each sink on the topic."""
    metadata: dict[str, object] = {
        "messages": sum(marks.values()),
        "partitions": len(marks),
        "high_watermarks": dg.MetadataValue.json({str(p): o for p, o in sorted(marks.items())}),
    }
    for sink, stored in sorted(offsets.items()):
        lag = sink_lag(marks, stored)
        metadata[f"lag/{sink}"] = sum(lag.values())
        metadata[f"lag_by_partition/{sink}"] = dg.MetadataValue.json(
            {str(p): n for p, n in sorted(lag.items())}
        )
    return dg.AssetObservation(asset_key=topic_asset_key(topic), metadata=metadata)


def build_topic_observations_sensor(settings: Settings) -> dg.SensorDefinition:
    """Observes every configured topic each analytics.observation_interval_s seconds."""

    @dg.sensor(
        name="topic_observations",
        minimum_interval_seconds=settings.analytics.observation_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Records each Kafka topic's high watermarks and every sink's lag (from "
            "sink_offsets) as asset observations of the topic assets."
        ),
    )
    def topic_observations(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.SensorResult:
        topics = settings_resource.settings.kafka.topics.all()
        events = []
        with postgres.connect(autocommit=True) as conn:
            for topic in topics:
                marks = kafka.high_watermarks(topic)
                # Every sink of the topic is listed, even before its first commit.
                offsets: dict[str, dict[int, int]] = {
                    spec.table: {}
                    for spec in SINKS.values()
                    if spec.topic(settings_resource.settings) == topic
                }
                try:
                    for sink, partition, next_offset in conn.execute(OFFSETS_SQL, (topic,)):
                        offsets.setdefault(sink, {})[partition] = next_offset
                except psycopg.errors.UndefinedTable:
                    context.log.warning("sink_offsets is missing: materialize database_schema")
                events.append(observe_topic(topic, marks, offsets))
        return dg.SensorResult(asset_events=events)

    return topic_observations
