"""Benchmark baseline: the health job's source, parsing and validation, with no windows.

Reads virtual-wearables exactly like `health_windows` and writes every valid reading to
the 1-minute metrics topic of the given settings (benchmarks point it at a scratch topic),
so the ratio windowed / pass-through isolates the cost of windowing, dedupe and alerts.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `flink run --python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.table import EnvironmentSettings, TableEnvironment

from flink_jobs import health_sql, health_windows
from openpipe.config import load_settings

READING_TYPES = (
    "event_id STRING, device_id STRING, patient_id STRING, metric STRING, reading DOUBLE, "
    "event_time STRING"
)


def main() -> None:
    """Entry point for `flink run --python`."""
    settings = load_settings()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    health_windows.configure_cluster_job(t_env, settings)
    health_windows.configure(t_env, settings)
    t_env.execute_sql(health_windows.kafka_source_ddl(settings))
    t_env.execute_sql(
        health_windows.kafka_sink_ddl(
            settings, "readings_sink", settings.kafka.topics.health_metrics_1min, READING_TYPES
        )
    )
    readings = health_sql.readings_sql(settings, health_windows.SOURCE_TABLE)
    t_env.execute_sql(
        "INSERT INTO readings_sink SELECT event_id, device_id, patient_id, metric, reading, "
        f"DATE_FORMAT(event_ts, '{health_sql.OUTPUT_TIME_FORMAT}') FROM ({readings})"
    )


if __name__ == "__main__":
    main()
