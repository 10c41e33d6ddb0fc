"""Infrastructure assets: the Kafka topics every other part of the pipeline uses."""

import dagster as dg

from openpipe import kafka as kafka_helpers
from openpipe_dagster.infrastructure.resources import KafkaResource, SettingsResource


@dg.asset(
    group_name="infrastructure",
    kinds={"kafka"},
    owners=["team:platform"],
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
    created = kafka_helpers.ensure_topics(
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
