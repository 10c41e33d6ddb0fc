"""Benchmark ceilings: Flink reading the wearables topic as raw bytes, into a blackhole or
through to another Kafka topic.

Same Kafka source options, topic and parallelism as `health_windows`, no decoding, no
state, and bounded: it ends at the offsets the topic had when it started, so its end time
is Flink's own. With `PASS_THROUGH_ENV` naming a topic, every value is written there as
it came (the project's producer batching, at-least-once, so no transaction waits on a
checkpoint): the read-and-write floor of any job that outputs to Kafka. Without it the
values go to a blackhole: the read alone. What the health job does above these is its price.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `flink run --python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flink_jobs import health_windows
from openpipe.config import Settings, load_settings

#: The topic the pass-through ceiling writes to; unset, the ceiling is the blackhole.
PASS_THROUGH_ENV = "OPENPIPE_CEILING_TOPIC"


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


def sink_ddl(settings: Settings, topic: str | None) -> str:
    """A blackhole, or `topic` written as raw bytes with the project's producer batching."""
    if topic is None:
        return (
            "CREATE TEMPORARY TABLE ceiling_sink (payload BYTES) WITH ('connector' = 'blackhole')"
        )
    return f"""
CREATE TEMPORARY TABLE ceiling_sink (payload BYTES) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{settings.kafka.bootstrap_servers}',
  {health_windows.producer_options(settings)},
  'format' = 'raw',
  'sink.delivery-guarantee' = 'at-least-once'
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
    t_env.execute_sql(sink_ddl(settings, os.environ.get(PASS_THROUGH_ENV)))
    t_env.execute_sql("INSERT INTO ceiling_sink SELECT payload FROM raw_wearables")


if __name__ == "__main__":
    main()
