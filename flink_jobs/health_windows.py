"""The health-window job: virtual-wearables -> event-time windows and alerts -> health-* topics.

Run on a cluster with `flink run -d --python flink_jobs/health_windows.py --jarfile <kafka
connector jar>` (FlinkService in openpipe_dagster/resources/flink.py does this). Connectors are SQL DDL
strings built from settings; `transform` is pure Flink SQL over any table with the source
columns (`payload`, `kafka_ts`, `event_ts`), so tests feed it from values or files.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if __package__ in (None, ""):  # run as a script by `flink run --python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from flink_jobs import health_sql
from openpipe.config import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:  # PyFlink costs ~0.25 s to import; Dagster runs only need the constants
    from pyflink.table import Table, TableEnvironment

logger = logging.getLogger(__name__)

STATE_DIR = REPO_ROOT / ".openpipe" / "flink"
CHECKPOINT_DIR = STATE_DIR / "checkpoints"
SAVEPOINT_DIR = STATE_DIR / "savepoints"
CONNECTOR_JAR = (
    REPO_ROOT / ".openpipe" / "jars" / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"
)

METRIC_COLUMNS = (
    "window_start",
    "window_end",
    "device_id",
    "patient_id",
    "metric",
    "reading_count",
    "avg_value",
    "min_value",
    "max_value",
)
ALERT_COLUMNS = (
    "alert_time",
    "window_start",
    "window_end",
    "device_id",
    "patient_id",
    "alert_type",
    "observed_value",
    "threshold",
    "severity",
)
_METRIC_TYPES = (
    "window_start STRING, window_end STRING, device_id STRING, patient_id STRING, "
    "metric STRING, reading_count BIGINT, avg_value DOUBLE, min_value DOUBLE, max_value DOUBLE"
)
_ALERT_TYPES = (
    "alert_time STRING, window_start STRING, window_end STRING, device_id STRING, "
    "patient_id STRING, alert_type STRING, observed_value DOUBLE, threshold DOUBLE, "
    "severity STRING"
)
SOURCE_TABLE = "wearables_source"


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
    return digest.hexdigest()[:12]


def job_name(settings: Settings) -> str:
    """The Flink job name: the configured name plus the config and plan hashes it runs with."""
    return (
        f"{settings.flink.job_name} "
        f"[config {settings.fingerprint()}, plan {plan_fingerprint(settings)}]"
    )


def configure(t_env: TableEnvironment, settings: Settings) -> None:
    """Session settings every run needs: UTC wall clock and the idle-source timeout."""
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")
    config.set("table.exec.source.idle-timeout", f"{settings.flink.idle_timeout_seconds} s")


def configure_cluster_job(t_env: TableEnvironment, settings: Settings) -> None:
    """Name, checkpointing and state location of the long-running job."""
    f = settings.flink
    config = t_env.get_config()
    config.set("pipeline.name", job_name(settings))
    config.set("parallelism.default", str(f.parallelism))
    config.set("execution.checkpointing.interval", f"{f.checkpoint_interval_s} s")
    config.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    config.set("execution.checkpointing.dir", CHECKPOINT_DIR.resolve().as_uri())
    config.set("execution.checkpointing.savepoint-dir", SAVEPOINT_DIR.resolve().as_uri())
    config.set(
        "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
    )
    config.set("execution.checkpointing.num-retained", "3")


def kafka_source_ddl(settings: Settings, table: str = SOURCE_TABLE) -> str:
    """The wearables topic as raw UTF-8 values with the Kafka timestamp and event-time columns."""
    k = settings.kafka
    return f"""
CREATE TEMPORARY TABLE {table} (
  payload STRING,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  {health_sql.source_columns_sql(settings)}
) WITH (
  'connector' = 'kafka',
  'topic' = '{k.topics.wearables}',
  'properties.bootstrap.servers' = '{k.bootstrap_servers}',
  'properties.group.id' = '{settings.flink.job_name}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)"""


def kafka_sink_ddl(settings: Settings, table: str, topic: str, columns: str) -> str:
    """A health-* topic: JSON values keyed by device_id, written in Kafka transactions."""
    return f"""
CREATE TEMPORARY TABLE {table} ({columns}) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{settings.kafka.bootstrap_servers}',
  'key.format' = 'raw',
  'key.fields' = 'device_id',
  'value.format' = 'json',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{settings.flink.job_name}-{table}',
  'properties.transaction.timeout.ms' = '900000'
)"""


def _view(t_env: TableEnvironment, name: str, table: Table) -> str:
    t_env.create_temporary_view(name, table)
    return name


def transform(t_env: TableEnvironment, source: Table, settings: Settings) -> HealthTables:
    """Windows and alerts from a table with columns payload, kafka_ts and event_ts (rowtime)."""
    src = _view(t_env, "health_input", source)
    readings = _view(
        t_env, "health_readings", t_env.sql_query(health_sql.readings_sql(settings, src))
    )
    rules = health_sql.windowed_metrics(settings)
    # One window aggregate per distinct window length among the 1-minute-family metrics.
    short = [r for r in rules if r.metric != "blood_sugar"]
    sizes: dict[int, list[str]] = {}
    for rule in short:
        sizes.setdefault(rule.window_s, []).append(rule.metric)
    short_sql = "\nUNION ALL\n".join(
        health_sql.window_metrics_sql(readings, tuple(metrics), size)
        for size, metrics in sizes.items()
    )
    sugar = next(r for r in rules if r.metric == "blood_sugar")
    metrics_1min = _view(t_env, "health_metrics_short", t_env.sql_query(short_sql))
    metrics_10min = _view(
        t_env,
        "health_metrics_long",
        t_env.sql_query(health_sql.window_metrics_sql(readings, (sugar.metric,), sugar.window_s)),
    )
    all_metrics = f"(SELECT * FROM {metrics_1min} UNION ALL SELECT * FROM {metrics_10min})"
    alerts = health_sql.alerts_sql(settings, all_metrics)
    times = ("window_start", "window_end", "alert_time")
    return HealthTables(
        t_env.sql_query(
            health_sql.formatted_times_sql(f"SELECT * FROM {metrics_1min}", times, METRIC_COLUMNS)
        ),
        t_env.sql_query(
            health_sql.formatted_times_sql(f"SELECT * FROM {metrics_10min}", times, METRIC_COLUMNS)
        ),
        t_env.sql_query(health_sql.formatted_times_sql(alerts, times, ALERT_COLUMNS)),
    )


def build_pipeline(t_env: TableEnvironment, settings: Settings):
    """Kafka source -> transform -> the three Kafka sinks, as one statement set."""
    configure(t_env, settings)
    t_env.execute_sql(kafka_source_ddl(settings))
    topics = settings.kafka.topics
    sinks = {
        "health_metrics_1min_sink": (topics.health_metrics_1min, _METRIC_TYPES),
        "health_metrics_10min_sink": (topics.health_metrics_10min, _METRIC_TYPES),
        "health_alerts_sink": (topics.health_alerts, _ALERT_TYPES),
    }
    for table, (topic, columns) in sinks.items():
        t_env.execute_sql(kafka_sink_ddl(settings, table, topic, columns))
    outputs = transform(t_env, t_env.from_path(SOURCE_TABLE), settings)
    statements = t_env.create_statement_set()
    for table, result in zip(sinks, outputs, strict=True):
        statements.add_insert(table, result)
    return statements


def main() -> None:
    """Entry point for `flink run --python`: submit the job with the effective settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = load_settings()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure_cluster_job(t_env, settings)
    result = build_pipeline(t_env, settings).execute()
    client = result.get_job_client()
    logger.info(
        "submitted %s as job %s", job_name(settings), client.get_job_id() if client else "?"
    )


if __name__ == "__main__":
    main()
