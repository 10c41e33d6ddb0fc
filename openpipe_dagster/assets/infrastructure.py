"""Infrastructure assets: the Kafka topics, the database schema and native-partition upkeep."""

import json

import dagster as dg
import psycopg

from openpipe.kafka import ensure_topics
from openpipe.storage.schema import apply_migrations, maintain_partitions
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource

GROUP = "infrastructure"
OWNERS = ["team:platform"]


@dg.asset(
    group_name=GROUP,
    kinds={"kafka"},
    owners=OWNERS,
    description=(
        "Creates (or verifies) every OpenPipe Kafka topic with the configured partitions and "
        "records each topic's partitions and high watermarks."
    ),
)
def kafka_topics(
    context: dg.AssetExecutionContext, kafka: KafkaResource, settings_resource: SettingsResource
) -> dg.MaterializeResult:
    settings = settings_resource.settings
    names = settings.kafka.topics.all()
    created = ensure_topics(
        kafka.admin(), names, settings.kafka.partitions, settings.kafka.replication_factor
    )
    metadata: dict[str, dg.MetadataValue | int | str] = {}
    rows = []
    for name in names:
        marks = kafka.high_watermarks(name)
        rows.append(
            dg.TableRecord(
                {
                    "topic": name,
                    "partitions": len(marks),
                    "created": created[name],
                    "high_watermarks": ", ".join(f"{p}:{o}" for p, o in marks.items()),
                    "messages": sum(marks.values()),
                }
            )
        )
        metadata[f"{name}.partitions"] = len(marks)
        metadata[f"{name}.messages"] = sum(marks.values())
    context.log.info("topics ready: %s (created: %s)", ", ".join(names), sum(created.values()))
    metadata["topics"] = dg.MetadataValue.table(
        rows,
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("topic", "string"),
                dg.TableColumn("partitions", "int"),
                dg.TableColumn("created", "bool"),
                dg.TableColumn("high_watermarks", "string"),
                dg.TableColumn("messages", "int"),
            ]
        ),
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "sql"},
    owners=OWNERS,
    description=(
        "Applies the versioned migrations in sql/migrations/ (recorded in schema_migrations): "
        "the tables of docs/architecture.md §5, as TimescaleDB hypertables when the extension is available "
        "(database.timescaledb: auto | on | off), the raw ones compressed by device after "
        "database.compress_after_days, else native daily range partitions; SELECT for the "
        "read-only role."
    ),
)
def database_schema(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    settings_resource: SettingsResource,
) -> dg.MaterializeResult:
    settings = settings_resource.settings
    with postgres.connect(autocommit=True) as conn:
        report = apply_migrations(conn, settings)
    context.log.info(
        "schema on %s storage; applied %s", report.storage, report.applied or "nothing new"
    )
    return dg.MaterializeResult(
        metadata={
            "storage": report.storage,
            "timescaledb_version": report.timescaledb_version or "not installed",
            "applied": dg.MetadataValue.json(report.applied),
            "already_applied": dg.MetadataValue.json(report.already_applied),
            "tables": dg.MetadataValue.json(report.tables),
            "time_partitioned": dg.MetadataValue.json(report.time_partitioned),
            "reader_granted_select": report.reader_granted,
            "compression": dg.MetadataValue.json(
                report.compression or {"native partitions": "no compression"}
            ),
        }
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    deps=[database_schema],
    description=(
        "Native-partition upkeep: creates the daily partitions database.partitions_ahead_days "
        "ahead and drops those older than database.retention_days. A no-op on TimescaleDB, "
        "whose retention policies do this."
    ),
)
def table_partitions(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    settings_resource: SettingsResource,
) -> dg.MaterializeResult:
    try:
        with postgres.connect(autocommit=True) as conn:
            changes = maintain_partitions(conn, settings_resource.settings)
    except psycopg.errors.UndefinedTable:
        raise dg.Failure(
            "schema_migrations is missing: materialize database_schema first"
        ) from None
    created = sum(len(c["created"]) for c in changes.values())
    dropped = sum(len(c["dropped"]) for c in changes.values())
    context.log.info("partitions created %d, dropped %d", created, dropped)
    return dg.MaterializeResult(
        metadata={
            "storage": "native" if changes else "timescaledb (retention policies)",
            "created": created,
            "dropped": dropped,
            "changes": dg.MetadataValue.json(json.loads(json.dumps(changes))),
        }
    )
