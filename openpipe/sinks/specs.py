"""What each sink reads and writes: topic, table, COPY columns and types, conflict key."""

from __future__ import annotations

from dataclasses import dataclass

from openpipe.config import Settings
from openpipe.sinks import rows

_KAFKA_COLUMNS = (
    ("kafka_topic", "text"),
    ("kafka_partition", "int4"),
    ("kafka_offset", "int8"),
)
# injected_fault: the openpipe-fault header, for scoring only.
_RAW_KAFKA_COLUMNS = (
    *_KAFKA_COLUMNS,
    ("kafka_timestamp", "timestamptz"),
    ("injected_fault", "text"),
)
_METRIC_COLUMNS = (
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("device_id", "text"),
    ("patient_id", "text"),
    ("metric", "text"),
    ("reading_count", "int4"),
    ("avg_value", "float8"),
    ("min_value", "float8"),
    ("max_value", "float8"),
    *_KAFKA_COLUMNS,
)


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One Kafka topic drained into one table (the sink's name is the table's)."""

    table: str
    topic_key: str  # attribute of settings.kafka.topics
    columns: tuple[tuple[str, str], ...]  # (name, Postgres type) in COPY order
    key: tuple[str, ...]  # the table's unique key: the ON CONFLICT target
    time_column: str
    family: str | None = None  # EventValidator family for raw topics; None for Flink outputs
    raw_row: rows.RawRowBuilder | None = None
    record_row: rows.RecordRowBuilder | None = None

    @property
    def upsert(self) -> bool:
        """Flink outputs are upserted (a re-emitted window replaces the old values)."""
        return self.family is None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        return tuple(pg_type for _, pg_type in self.columns)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Columns an upsert may change: everything except the key and the Kafka coordinates."""
        skip = {*self.key, *(name for name, _ in _RAW_KAFKA_COLUMNS)}
        return tuple(name for name in self.column_names if name not in skip)

    def topic(self, settings: Settings) -> str:
        """The topic this sink drains, from config."""
        return getattr(settings.kafka.topics, self.topic_key)


SINKS: dict[str, SinkSpec] = {
    spec.table: spec
    for spec in (
        SinkSpec(
            table="wearable_readings",
            topic_key="wearables",
            family="wearables",
            columns=(
                ("event_id", "uuid"),
                ("event_time", "timestamptz"),
                ("device_id", "text"),
                ("patient_id", "text"),
                ("metric", "text"),
                ("heart_rate_bpm", "float8"),
                ("systolic_mmhg", "float8"),
                ("diastolic_mmhg", "float8"),
                ("glucose_mg_dl", "float8"),
                *_RAW_KAFKA_COLUMNS,
            ),
            key=("event_id", "event_time"),
            time_column="event_time",
            raw_row=rows.wearable_row,
        ),
        SinkSpec(
            table="restaurant_orders",
            topic_key="restaurants",
            family="restaurants",
            columns=(
                ("event_id", "uuid"),
                ("event_time", "timestamptz"),
                ("device_id", "text"),
                ("restaurant_id", "text"),
                ("city", "text"),
                ("order_id", "text"),
                ("table_number", "int4"),
                ("order_status", "text"),
                ("payment_status", "text"),
                ("payment_method", "text"),
                ("items", "jsonb"),
                ("total_inr", "float8"),
                *_RAW_KAFKA_COLUMNS,
            ),
            key=("event_id", "event_time"),
            time_column="event_time",
            raw_row=rows.restaurant_row,
        ),
        SinkSpec(
            table="gps_points",
            topic_key="gps",
            family="gps",
            columns=(
                ("event_id", "uuid"),
                ("event_time", "timestamptz"),
                ("device_id", "text"),
                ("vehicle_id", "text"),
                ("route_id", "text"),
                ("city", "text"),
                ("lat", "float8"),
                ("lon", "float8"),
                ("speed_kmh", "float8"),
                ("heading_deg", "float8"),
                ("accuracy_m", "float8"),
                *_RAW_KAFKA_COLUMNS,
            ),
            key=("event_id", "event_time"),
            time_column="event_time",
            raw_row=rows.gps_row,
        ),
        SinkSpec(
            table="health_metrics_1min",
            topic_key="health_metrics_1min",
            columns=_METRIC_COLUMNS,
            key=("device_id", "metric", "window_start"),
            time_column="window_start",
            record_row=rows.metric_row,
        ),
        SinkSpec(
            table="health_metrics_10min",
            topic_key="health_metrics_10min",
            columns=_METRIC_COLUMNS,
            key=("device_id", "metric", "window_start"),
            time_column="window_start",
            record_row=rows.metric_row,
        ),
        SinkSpec(
            table="health_alerts",
            topic_key="health_alerts",
            columns=(
                ("alert_time", "timestamptz"),
                ("window_start", "timestamptz"),
                ("window_end", "timestamptz"),
                ("device_id", "text"),
                ("patient_id", "text"),
                ("alert_type", "text"),
                ("observed_value", "float8"),
                ("threshold", "float8"),
                ("severity", "text"),
                *_KAFKA_COLUMNS,
            ),
            key=("device_id", "alert_type", "window_start"),
            time_column="window_start",
            record_row=rows.alert_row,
        ),
    )
}

DEAD_LETTER_COLUMNS = (
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "kafka_timestamp",
    "raw_value",
    "error_kind",
    "error_detail",
    "injected_fault",
    "sink",
)
