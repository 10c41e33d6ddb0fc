"""Sink assets: one asset per table fed from Kafka (name = table name), and dead_letters."""

import dagster as dg

from openpipe.config import Settings
from openpipe.sinks import SINKS, DrainResult, SinkSpec, drain_topic
from openpipe_dagster.assets.topics import topic_asset_key
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import SINK_TAG

OWNERS = ["team:data-platform"]
_DAGSTER_TYPES = {
    "uuid": "uuid",
    "timestamptz": "timestamptz",
    "text": "string",
    "int4": "int",
    "int8": "bigint",
    "float8": "float",
    "jsonb": "json",
}
#: Op-level retries inside a run, for transient failures (Postgres restart, Kafka
#: leader change); run retries (dagster/max_retries) cover crashed run processes.
SINK_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def column_schema(spec: SinkSpec) -> dg.TableSchema:
    """The table's columns as Dagster column-schema metadata."""
    columns = [dg.TableColumn(name, _DAGSTER_TYPES[t]) for name, t in spec.columns]
    columns.append(dg.TableColumn("ingested_at", "timestamptz"))
    return dg.TableSchema(
        columns=columns,
        constraints=dg.TableConstraints(other=[f"unique ({', '.join(spec.key)})"]),
    )


DEAD_LETTER_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("kafka_topic", "string"),
        dg.TableColumn("kafka_partition", "int"),
        dg.TableColumn("kafka_offset", "bigint"),
        dg.TableColumn("kafka_key", "string"),
        dg.TableColumn("kafka_timestamp", "timestamptz"),
        dg.TableColumn("raw_value", "bytea"),
        dg.TableColumn("error_kind", "string"),
        dg.TableColumn("error_detail", "string"),
        dg.TableColumn(
            "injected_fault", "string", description="openpipe-fault header; scoring only"
        ),
        dg.TableColumn("sink", "string"),
        dg.TableColumn("received_at", "timestamptz"),
    ],
    constraints=dg.TableConstraints(other=["unique (kafka_topic, kafka_partition, kafka_offset)"]),
)


def drain_metadata(result: DrainResult) -> dict[str, dg.MetadataValue | int | float | str]:
    """Materialization metadata for one drain run."""
    return {
        "topic": result.topic,
        "storage": result.storage,
        "messages": result.messages,
        "rows_written": result.rows_written,
        "duplicates_dropped": result.duplicates_dropped,
        "dead_letters": sum(result.dead_letters.values()),
        "dead_letters_by_kind": dg.MetadataValue.json(result.dead_letters),
        "offset_ranges": dg.MetadataValue.json(
            {str(p): {"from": a, "to": b} for p, (a, b) in result.offset_ranges.items()}
        ),
        "lag_after": result.total_lag,
        "lag_after_by_partition": dg.MetadataValue.json(
            {str(p): lag for p, lag in result.lag_after.items()}
        ),
        "rows_per_s": round(result.rows_per_second, 1),
        "transactions": result.transactions,
        "transactions_via_staging": result.staged_transactions,
        "seconds": round(result.seconds, 3),
        "partitions_created": dg.MetadataValue.json(result.partitions_created),
        "skipped_reason": result.skipped_reason or "",
    }


def build_sink_asset(spec: SinkSpec, settings: Settings) -> dg.AssetsDefinition:
    """The asset that drains `spec`'s topic into its table (name = table name).

    The topic name from `settings` decides the lineage edge (topic asset -> table).
    """
    source = "validated events" if spec.family else "Flink window results (upserts)"
    extra = " Rejected messages go to dead_letters in the same transaction." if spec.family else ""

    @dg.asset(
        name=spec.table,
        group_name="raw" if spec.family else "stream",
        kinds={"kafka", "postgres"},
        owners=OWNERS,
        deps=["database_schema", topic_asset_key(spec.topic(settings))],
        pool=f"sink_{spec.table}",
        retry_policy=SINK_RETRY_POLICY,
        tags={SINK_TAG: spec.table},
        metadata={"dagster/column_schema": column_schema(spec), "dagster/table_name": spec.table},
        description=(
            f"Drains the `{spec.topic_key}` topic into `{spec.table}` ({source}) with "
            f"exactly-once effect: rows, dead letters and sink_offsets commit together.{extra}"
        ),
    )
    def _sink(
        context: dg.AssetExecutionContext,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.MaterializeResult:
        result = drain_topic(
            spec,
            settings_resource.settings,
            connect=lambda: postgres.connect(autocommit=True),
            make_consumer=kafka.consumer,
        )
        context.log.info(
            "%s: %d messages -> %d rows, %d duplicates, dead letters %s, lag after %d",
            spec.table,
            result.messages,
            result.rows_written,
            result.duplicates_dropped,
            result.dead_letters or "none",
            result.total_lag,
        )
        return dg.MaterializeResult(metadata=drain_metadata(result))

    return _sink


def build_sink_assets(settings: Settings) -> dict[str, dg.AssetsDefinition]:
    """Table name -> sink asset, for every sink."""
    return {spec.table: build_sink_asset(spec, settings) for spec in SINKS.values()}


@dg.asset(
    group_name="raw",
    kinds={"postgres"},
    owners=OWNERS,
    deps=[dg.AssetKey(table) for table in SINKS],
    metadata={"dagster/column_schema": DEAD_LETTER_SCHEMA, "dagster/table_name": "dead_letters"},
    description=(
        "Rejected Kafka messages with error_kind and error_detail, written by the sink assets "
        "in the same transaction as their rows and offsets; materializing reports the counts "
        "per topic and kind."
    ),
)
def dead_letters(postgres: PostgresResource) -> dg.MaterializeResult:
    with postgres.connect(autocommit=True) as conn:
        counts = conn.execute(
            "SELECT kafka_topic, error_kind, count(*) FROM dead_letters GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    by_topic: dict[str, dict[str, int]] = {}
    for topic, kind, count in counts:
        by_topic.setdefault(topic, {})[kind] = count
    return dg.MaterializeResult(
        metadata={
            "dead_letters": sum(c for _, _, c in counts),
            "by_topic_and_kind": dg.MetadataValue.json(by_topic),
        }
    )
