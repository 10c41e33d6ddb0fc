"""Sinks domain: database schema, Kafka -> PostgreSQL sink assets, lag sensors, schedules."""

import dagster as dg

from openpipe.config import load_settings
from openpipe.sinks import SINKS
from openpipe_dagster.sinks.assets import (
    SINK_ASSETS,
    database_schema,
    dead_letters,
    table_partitions,
)
from openpipe_dagster.sinks.schedules import build_schedules
from openpipe_dagster.sinks.sensors import build_sink_sensor, sink_job

_settings = load_settings()
_jobs = {table: sink_job(spec, _settings) for table, spec in SINKS.items()}

defs = dg.Definitions(
    assets=[database_schema, *SINK_ASSETS.values(), dead_letters, table_partitions],
    jobs=list(_jobs.values()),
    sensors=[build_sink_sensor(spec, _jobs[table], _settings) for table, spec in SINKS.items()],
    schedules=build_schedules(_settings, list(SINKS)),
)
