"""The health-window job: virtual-wearables -> event-time windows and alerts -> health-* topics.

Run on a cluster with `flink run -d --python flink_jobs/health_windows.py --jarfile <kafka
connector jar>` (FlinkService in openpipe_dagster/resources/flink.py does this). Connectors are SQL DDL
strings built from settings; `transform` takes any table with the source columns
(`health_sql.DECODED_COLUMNS` and `kafka_ts`), filters the valid readings in SQL and hands
them to the keyed window operator of jvm/flink-wearables (`HealthWindows`), so tests feed it
from values or files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if __package__ in (None, ""):  # run as a script by `flink run --python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import yaml

from flink_jobs import health_sql
from openpipe.config import REPO_ROOT, Settings, load_settings
from openpipe.stack.jars import FLINK_JARS, WEARABLES_JAR_NAME, WEARABLES_PROJECT

if TYPE_CHECKING:  # PyFlink costs ~0.25 s to import; Dagster runs only need the constants
    from pyflink.table import StreamTableEnvironment, Table, TableEnvironment

logger = logging.getLogger(__name__)

#: Where the submitting side keeps its deploy ledger; the cluster keeps checkpoints and
#: savepoints in its own configured directories (the job never names a local path).
STATE_DIR = REPO_ROOT / ".openpipe" / "flink"
CONNECTOR_JAR = FLINK_JARS / "flink-sql-connector-kafka-5.0.0-2.2.jar"
#: The `openpipe-wearable` format, its parse function and the window operator, uploaded with
#: the job like the connector.
WEARABLES_JAR = FLINK_JARS / WEARABLES_JAR_NAME

SOURCE_TABLE = "wearables_source"
#: Extra Flink options for one submission, a JSON object of strings: benchmarks compare job
#: options with it (benchmarks/flink_bench.py --flink-option); the deployed job never has it.
EXTRA_OPTIONS_ENV = "OPENPIPE_FLINK_JOB_OPTIONS"


class HealthTables(NamedTuple):
    """The three outputs of `transform`, with the column names of docs/architecture.md §5."""

    metrics_1min: Table
    metrics_10min: Table
    alerts: Table


def plan_fingerprint(settings: Settings) -> str:
    """A hash of what shapes the job graph: the settings it reads and this job's own code.

    State from a savepoint or checkpoint is only carried over to a job with the same plan
    hash; Flink SQL gives no state compatibility across changed queries.
    """
    digest = hashlib.sha256()
    used = {
        "flink": settings.flink.model_dump(),
        "validation": settings.validation.model_dump(),
        "kafka": {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "topics": settings.kafka.topics.model_dump(),
        },
    }
    digest.update(orjson.dumps(used, option=orjson.OPT_SORT_KEYS))
    for module in (health_sql.__file__, __file__):
        digest.update(Path(module).read_bytes())
    # The decoder's verdicts are part of the plan: a changed parser means a redeploy.
    for source in sorted((WEARABLES_PROJECT / "src").rglob("*.java")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def job_name(settings: Settings) -> str:
    """The Flink job name: the configured name plus the config and plan hashes it runs with."""
    return (
        f"{settings.flink.job_name} "
        f"[config {settings.fingerprint()}, plan {plan_fingerprint(settings)}]"
    )


def job_parallelism(settings: Settings) -> int:
    """The job's parallelism: `flink.job_parallelism`, or the wearables partition count if 0."""
    return settings.flink.job_parallelism or settings.kafka.partitions


def configure(
    t_env: TableEnvironment, settings: Settings, overrides: dict[str, str] | None = None
) -> None:
    """Session settings every run needs: UTC wall clock, idle-source timeout, object reuse,
    the decoder and window operator jar; then `overrides` (benchmark options), which win."""
    if not WEARABLES_JAR.exists():
        raise FileNotFoundError(
            f"{WEARABLES_JAR} is missing; run `make up` (it builds jvm/flink-wearables)."
        )
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")
    config.set("table.exec.source.idle-timeout", f"{settings.flink.idle_timeout_seconds} s")
    # Chained operators hand records on without a deep copy; Flink SQL's operators and the
    # window operator copy what they keep, and the format builds a new row per record.
    config.set("pipeline.object-reuse", "true")
    # Uploaded with the job next to `--jarfile`'s connector (kept: setting replaces the
    # list); setting it also loads the jar into this client for planning.
    listed = config.get("pipeline.jars", None) or ""  # "a;b" or, once set, "['a', 'b']"
    jars = yaml.safe_load(listed) if listed.startswith("[") else listed.split(";")
    wearables = WEARABLES_JAR.resolve().as_uri()
    config.set("pipeline.jars", ";".join([*[j for j in jars if j and j != wearables], wearables]))
    for key, value in (overrides or {}).items():
        config.set(key, value)
    t_env.execute_sql(
        f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {health_sql.PARSE_FUNCTION} "
        f"AS '{health_sql.PARSE_FUNCTION_CLASS}' LANGUAGE JAVA"
    )


#: Job options that would name a path of the submitting machine; the cluster's own
#: configuration sets these (openpipe/stack/flink.py locally, FLINK_PROPERTIES in compose).
CLUSTER_OWNED_OPTIONS = (
    "execution.checkpointing.dir",
    "execution.checkpointing.savepoint-dir",
    "state.checkpoints.dir",
    "state.savepoints.dir",
)


def cluster_job_options(settings: Settings) -> dict[str, str]:
    """Name, parallelism, checkpointing and state backend of the long-running job.

    No directory: checkpoints and savepoints go where the cluster that runs the job says.
    """
    f = settings.flink
    return {
        "pipeline.name": job_name(settings),
        "parallelism.default": str(job_parallelism(settings)),
        "execution.checkpointing.interval": f"{f.checkpoint_interval_s} s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": f.state_backend,
        "execution.checkpointing.incremental": str(f.state_backend == "rocksdb").lower(),
    }


def kafka_source_ddl(settings: Settings, table: str = SOURCE_TABLE) -> str:
    """The wearables topic, each value judged and decoded once by the `openpipe-wearable` format."""
    k = settings.kafka
    return f"""
CREATE TEMPORARY TABLE {table} (
  {health_sql.decoded_columns_ddl()},
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  WATERMARK FOR event_ts AS {health_sql.watermark_sql(settings)}
) WITH (
  'connector' = 'kafka',
  'topic' = '{k.topics.wearables}',
  'properties.bootstrap.servers' = '{k.bootstrap_servers}',
  'properties.group.id' = '{settings.flink.job_name}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = '{health_sql.WEARABLE_FORMAT}',
  '{health_sql.WEARABLE_FORMAT}.rules' = '{health_sql.wearable_rules(settings)}'
)"""


def producer_options(settings: Settings) -> str:
    """A Kafka sink's producer batching, as every producer of the project has it.

    (`kafka.producer`: with the client's default 16 KiB batches and 5 ms linger, the broker
    spent more CPU per output than the job did.)
    """
    tuning = settings.kafka.producer
    return (
        f"'properties.linger.ms' = '{tuning.linger_ms}',\n"
        f"  'properties.batch.size' = '{tuning.batch_size}',\n"
        f"  'properties.compression.type' = '{tuning.compression_type}'"
    )


def kafka_sink_ddl(settings: Settings, table: str, topic: str, columns: str) -> str:
    """A health-* topic: JSON values keyed by device_id, written in Kafka transactions
    (named as `flink.transaction_naming` says), batched by `producer_options`."""
    return f"""
CREATE TEMPORARY TABLE {table} ({columns}) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{settings.kafka.bootstrap_servers}',
  {producer_options(settings)},
  'key.format' = 'raw',
  'key.fields' = 'device_id',
  'value.format' = 'json',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{settings.flink.job_name}-{table}',
  'sink.transaction-naming-strategy' = '{settings.flink.transaction_naming.upper()}',
  'properties.transaction.timeout.ms' = '900000'
)"""


def _view(t_env: TableEnvironment, name: str, table: Table) -> str:
    t_env.create_temporary_view(name, table)
    return name


def transform(t_env: StreamTableEnvironment, source: Table, settings: Settings) -> HealthTables:
    """Windows and alerts from a table with the decoded columns, kafka_ts and event_ts (rowtime).

    The valid readings (SQL) go to one keyed operator (`HealthWindows` in jvm/flink-wearables)
    that keeps each device's open windows, dedupes event_ids, fires windows on the watermark
    and judges alerts; its three outputs come back as tables.
    """
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    src = _view(t_env, "health_input", source)
    readings = t_env.sql_query(health_sql.readings_sql(settings, src))
    operator = get_gateway().jvm.dev.openpipe.flink.HealthWindows
    tables = operator.apply(t_env._j_tenv, readings._j_table, health_sql.health_rules(settings))
    return HealthTables(*(Table(table, t_env) for table in tables))


def build_pipeline(
    t_env: StreamTableEnvironment, settings: Settings, overrides: dict[str, str] | None = None
):
    """Kafka source -> transform -> the three Kafka sinks, as one statement set.

    Each sink takes the columns of the output it writes, as the window operator makes them.
    """
    configure(t_env, settings, overrides)
    t_env.execute_sql(kafka_source_ddl(settings))
    outputs = transform(t_env, t_env.from_path(SOURCE_TABLE), settings)
    topics = settings.kafka.topics
    statements = t_env.create_statement_set()
    for name, result in zip(outputs._fields, outputs, strict=True):
        sink = f"health_{name}_sink"
        t_env.execute_sql(
            kafka_sink_ddl(settings, sink, getattr(topics, f"health_{name}"), _columns_ddl(result))
        )
        statements.add_insert(sink, result)
    return statements


def _columns_ddl(table: Table) -> str:
    """A table's columns as DDL (`name TYPE, ...`)."""
    columns = table._j_table.getResolvedSchema().getColumns()
    return ", ".join(f"`{column.getName()}` {column.getDataType()}" for column in columns)


def stream_table_env(options: dict[str, str], batch: bool = False) -> StreamTableEnvironment:
    """A table environment over a DataStream environment built with `options`.

    The window operator is a DataStream operator, so the job needs a StreamTableEnvironment,
    and the options (parallelism above all) must be the DataStream environment's own:
    operators take the environment's parallelism when they are created.
    """
    from pyflink.common import Configuration
    from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    config = Configuration()
    for key, value in options.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if batch:
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    mode = EnvironmentSettings.in_batch_mode() if batch else EnvironmentSettings.in_streaming_mode()
    t_env = StreamTableEnvironment.create(env, environment_settings=mode)
    for key, value in options.items():
        t_env.get_config().set(key, value)
    return t_env


def main() -> None:
    """Entry point for `flink run --python`: submit the job with the effective settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    extra = orjson.loads(os.environ.get(EXTRA_OPTIONS_ENV) or "{}")
    if extra:
        logger.info("extra job options from %s: %s", EXTRA_OPTIONS_ENV, extra)
    # The extra options last, so they win over the job's own (also over `configure`'s).
    overrides = {key: str(value) for key, value in extra.items()}
    t_env = stream_table_env({**cluster_job_options(settings), **overrides})
    result = build_pipeline(t_env, settings, overrides).execute()
    client = result.get_job_client()
    logger.info(
        "submitted %s as job %s", job_name(settings), client.get_job_id() if client else "?"
    )


if __name__ == "__main__":
    main()
