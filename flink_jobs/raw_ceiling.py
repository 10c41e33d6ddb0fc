"""Benchmark ceiling: Flink reading the wearables topic as raw bytes into a blackhole.

Same Kafka source options, topic and parallelism as `health_windows`, no decoding, no
state, no output, and bounded: it ends at the offsets the topic had when it started, so
its end time is Flink's own. What the health job does above this is its price.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `flink run --python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flink_jobs import health_windows
from openpipe.config import Settings, load_settings


def source_ddl(settings: Settings) -> str:
    """The wearables topic as raw bytes, read from the earliest offset to the latest at start."""
    k = settings.kafka
    return f"""
CREATE TEMPORARY TABLE raw_wearables (payload BYTES) WITH (
  'connector' = 'kafka',
  'topic' = '{k.topics.wearables}',
  'properties.bootstrap.servers' = '{k.bootstrap_servers}',
  'properties.group.id' = '{settings.flink.job_name}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'raw'
)"""


def main() -> None:
    """Entry point for `flink run --python`."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = load_settings()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("pipeline.name", health_windows.job_name(settings))
    config.set("parallelism.default", str(health_windows.job_parallelism(settings)))
    t_env.execute_sql(source_ddl(settings))
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE nowhere (payload BYTES) WITH ('connector' = 'blackhole')"
    )
    t_env.execute_sql("INSERT INTO nowhere SELECT payload FROM raw_wearables")


if __name__ == "__main__":
    main()
