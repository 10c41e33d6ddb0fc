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
from openpipe_dagster.sinks.sensors import build_schema_sensor, build_sink_sensor, sink_job

_settings = load_settings()
_jobs = {table: sink_job(spec, _settings) for table, spec in SINKS.items()}
_schema_job = dg.define_asset_job(
    name="database_schema_job",
    selection=["database_schema"],
    description="Apply pending migrations from sql/migrations/.",
)

defs = dg.Definitions(
    assets=[database_schema, *SINK_ASSETS.values(), dead_letters, table_partitions],
    jobs=[*_jobs.values(), _schema_job],
    sensors=[
        *(build_sink_sensor(spec, _jobs[table], _settings) for table, spec in SINKS.items()),
        build_schema_sensor(_schema_job),
    ],
    schedules=build_schedules(_settings, list(SINKS)),
)
