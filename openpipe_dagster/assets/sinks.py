"""Sink assets: one asset per table fed from Kafka (name = table name), and dead_letters.

A run of a sink asset is a session (openpipe.sinks.drain.SinkSession): micro-batch after
micro-batch for pipeline.session_seconds, one materialization per
pipeline.materialization_interval_s in which rows or dead letters were written (logged
with `context.log_event`; Dagster 1.13 stores each, then the one returned at the end),
none for idle intervals. SIGINT (a termination from Dagster) and SIGTERM (`openpipe down`)
end it after the transaction in flight.
"""

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from confluent_kafka import KafkaException
from pydantic import Field

from openpipe.config import Settings
from openpipe.sinks import SINKS, DrainResult, SinkSpec, drain_topic
from openpipe.sinks.drain import OffsetsAheadOfTopic, SinkSession
from openpipe.sinks.intervals import IntervalReport
from openpipe.sinks.writer import OffsetConflict
from openpipe_dagster.assets.topics import topic_asset_key
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import SINK_TAG, session_length_s

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
SAFETY_NET_JOB = "sinks_safety_net_job"
#: Transient failures (PostgreSQL restart, Kafka leader change, an offset fence) restart
#: the session inside the run, this many times. Not a Dagster RetryPolicy: Dagster turns
#: an interrupt (a termination from the UI) into a retry when the op has one.
SESSION_ATTEMPTS = 4


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


class SinkRunConfig(dg.Config):
    """What one run of a sink does. The lag sensor sets `shard` (and `lock_wait_s` for a
    session that takes over from one about to end); the safety net sets `catch_up`."""

    shard: int = Field(default=0, ge=0, description="drain partitions p % sink_shards == shard")
    catch_up: bool = Field(
        default=False,
        description="drain every shard up to the high watermarks seen at start, then end",
    )
    session_seconds: float = Field(
        default=0, ge=0, description="end the session after this; 0: pipeline.session_seconds"
    )
    lock_wait_s: float = Field(
        default=0, ge=0, description="wait this long for a predecessor to release the locks"
    )


def drain_metadata(result: DrainResult) -> dict[str, dg.MetadataValue | int | float | str]:
    """Materialization metadata for a drain to the high watermarks (the safety net)."""
    return {
        "topic": result.topic,
        "storage": result.storage,
        "messages": result.messages,
        "rows_written": result.rows_written,
        "duplicates_dropped": result.duplicates_dropped,
        "dead_letters": sum(result.dead_letters.values()),
        **{f"dead_letters_{kind}": n for kind, n in sorted(result.dead_letters.items())},
        "offset_ranges": dg.MetadataValue.json(
            {str(p): {"from": a, "to": b} for p, (a, b) in result.offset_ranges.items()}
        ),
        "lag_after": result.total_lag,
        **{f"lag_after_p{p}": lag for p, lag in sorted(result.lag_after.items())},
        "rows_per_s": round(result.rows_per_second, 1),
        "transactions": result.transactions,
        "transactions_via_staging": result.staged_transactions,
        "seconds": round(result.seconds, 3),
        "partitions_created": dg.MetadataValue.json(result.partitions_created),
        "skipped_reason": result.skipped_reason or "",
    }


def interval_metadata(
    report: IntervalReport, *, topic: str, storage: str, shard: int
) -> dict[str, dg.MetadataValue | int | float | str]:
    """Numeric metadata of one interval of a session, which Dagster plots on the asset page."""
    metadata: dict = {
        "topic": topic,
        "storage": storage,
        "shard": shard,
        "interval_s": round(report.seconds, 1),
        "messages": report.messages,
        "rows_written": report.rows_written,
        "dead_letters": sum(report.dead_letters.values()),
        **{f"dead_letters_{kind}": n for kind, n in sorted(report.dead_letters.items())},
        "duplicates_dropped": report.duplicates_dropped,
        "transactions": report.transactions,
        **{f"next_offset_p{p}": n for p, n in report.offsets.items()},
        "lag_after": sum(report.lag_after.values()),
        **{f"lag_after_p{p}": lag for p, lag in report.lag_after.items()},
        "rows_per_s": round(report.rows_per_second, 1),
    }
    if report.freshness_p50_s is not None:
        metadata["freshness_p50_s"] = round(report.freshness_p50_s, 3)
        metadata["freshness_p95_s"] = round(report.freshness_p95_s, 3)
    return metadata


def session_metadata(result: DrainResult) -> dict[str, dg.MetadataValue | int | float | str]:
    """What the whole session did, added to its last materialization."""
    return {
        "session_seconds": round(result.seconds, 1),
        "session_messages": result.messages,
        "session_rows_written": result.rows_written,
        "session_transactions": result.transactions,
        "transactions_via_staging": result.staged_transactions,
        "partitions": dg.MetadataValue.json(result.partitions),
        "partitions_created": dg.MetadataValue.json(result.partitions_created),
        "stopped_on_request": result.stopped,
        "skipped_reason": result.skipped_reason or "",
    }


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT (a Dagster termination) and SIGTERM (`openpipe down`) set `stop` instead of
    interrupting: the session ends after the transaction in flight. Yields the signals seen."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    seen: list[int] = []

    def _handler(signum, _frame) -> None:
        seen.append(signum)
        stop.set()

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, _handler)
    try:
        yield seen
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def run_session(
    context: dg.AssetExecutionContext,
    spec: SinkSpec,
    settings: Settings,
    config: SinkRunConfig,
    *,
    connect,
    make_consumer,
) -> dg.MaterializeResult:
    """One session: interval materializations while it runs, the last one returned."""
    stop = threading.Event()
    shards = settings.pipeline.sink_shards
    with stop_on_signals(stop) as signals:
        for attempt in range(1, SESSION_ATTEMPTS + 1):
            try:
                result, final = _one_session(
                    context, spec, settings, config, stop, connect, make_consumer
                )
                break
            except OffsetsAheadOfTopic as exc:
                # Retrying cannot help: an operator must choose where to resume.
                raise dg.Failure(
                    description=str(exc),
                    allow_retries=False,
                    metadata={
                        "topic": exc.topic,
                        "ahead": dg.MetadataValue.json(
                            {
                                str(p): {"stored": s, "high_watermark": h}
                                for p, (s, h) in exc.ahead.items()
                            }
                        ),
                    },
                ) from exc
            except (psycopg.OperationalError, KafkaException, OffsetConflict) as exc:
                if attempt == SESSION_ATTEMPTS or stop.is_set():
                    raise
                delay = 2.0**attempt
                context.log.warning(
                    "%s: session attempt %d failed (%s: %s); restarting it in %.0f s from "
                    "the stored offsets",
                    spec.table,
                    attempt,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                stop.wait(delay)
    context.log.info(
        "%s shard %d/%d: %d messages -> %d rows, %d duplicates, dead letters %s in %.0f s%s",
        spec.table,
        config.shard,
        shards,
        result.messages,
        result.rows_written,
        result.duplicates_dropped,
        result.dead_letters or "none",
        result.seconds,
        f"; skipped: {result.skipped_reason}" if result.skipped_reason else "",
    )
    metadata = {
        **interval_metadata(final, topic=result.topic, storage=result.storage, shard=config.shard),
        **session_metadata(result),
    }
    if signal.SIGINT in signals:
        # A termination from Dagster: record what was written, then end as canceled.
        context.log_event(dg.AssetMaterialization(asset_key=context.asset_key, metadata=metadata))
        raise dg.DagsterExecutionInterruptedError()
    return dg.MaterializeResult(metadata=metadata)


def _one_session(context, spec, settings, config, stop, connect, make_consumer):
    """Open, run and close one SinkSession; (its DrainResult, its last interval)."""
    session = SinkSession(
        spec,
        settings,
        connect=connect,
        make_consumer=make_consumer,
        shard=config.shard,
        shards=settings.pipeline.sink_shards,
        stop=stop,
        lock_wait_s=config.lock_wait_s,
    )
    with session:

        def on_interval(report: IntervalReport) -> None:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key,
                    metadata=interval_metadata(
                        report,
                        topic=session.topic,
                        storage=session.result.storage,
                        shard=config.shard,
                    ),
                )
            )

        result = session.run(
            seconds=config.session_seconds or session_length_s(settings, spec.table),
            on_interval=on_interval,
        )
        return result, session.final_interval()


def catch_up(spec: SinkSpec, settings: Settings, *, connect, make_consumer) -> dg.MaterializeResult:
    """Each shard in turn up to the high watermarks seen at its start (skipped if a session
    holds its locks)."""
    shards = settings.pipeline.sink_shards
    results = [
        drain_topic(
            spec,
            settings,
            connect=connect,
            make_consumer=make_consumer,
            shard=shard,
            shards=shards,
        )
        for shard in range(shards)
    ]
    total = results[0]
    for other in results[1:]:
        total.messages += other.messages
        total.rows_written += other.rows_written
        total.duplicates_dropped += other.duplicates_dropped
        total.dead_letters = dict(Counter(total.dead_letters) + Counter(other.dead_letters))
        total.transactions += other.transactions
        total.staged_transactions += other.staged_transactions
        total.offset_ranges.update(other.offset_ranges)
        total.lag_after.update(other.lag_after)
        total.partitions_created += other.partitions_created
        total.seconds += other.seconds
        total.storage = total.storage or other.storage
        if other.skipped_reason:
            total.skipped_reason = "; ".join(
                filter(None, [total.skipped_reason, other.skipped_reason])
            )
    return dg.MaterializeResult(metadata=drain_metadata(total))


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
        tags={SINK_TAG: spec.table},
        metadata={"dagster/column_schema": column_schema(spec), "dagster/table_name": spec.table},
        description=(
            f"Drains the `{spec.topic_key}` topic into `{spec.table}` ({source}) with "
            f"exactly-once effect: rows, dead letters and sink_offsets commit together.{extra} "
            "A run is a session of micro-batches (pipeline.session_seconds) with one "
            "materialization per pipeline.materialization_interval_s that wrote something."
        ),
    )
    def _sink(
        context: dg.AssetExecutionContext,
        config: SinkRunConfig,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.MaterializeResult:
        current = settings_resource.settings
        clients = {
            "connect": lambda: postgres.connect(autocommit=True),
            "make_consumer": kafka.consumer,
        }
        # The safety net's runs catch up, whatever config they were launched with.
        if config.catch_up or context.job_name == SAFETY_NET_JOB:
            return catch_up(spec, current, **clients)
        return run_session(context, spec, current, config, **clients)

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
