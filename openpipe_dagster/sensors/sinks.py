"""A lag sensor per sink (one factory): requests a run of the sink's job when it lags its topic."""

import hashlib
from typing import TYPE_CHECKING

import dagster as dg
import psycopg

from openpipe.config import Settings
from openpipe.sinks import SinkSpec, partition_lag
from openpipe.sinks.writer import read_offsets
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import IN_FLIGHT_STATUSES, SINK_TAG

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def sink_run_key(sink: str, stored: dict[int, int], marks: dict[int, int]) -> str:
    """A run key from the stored offsets and the high watermarks: same state, same key."""
    state = ",".join(f"{p}:{stored.get(p, 0)}-{marks[p]}" for p in sorted(marks))
    return f"{sink}-{hashlib.sha1(state.encode()).hexdigest()[:16]}"


def build_sink_sensor(
    spec: SinkSpec, job: "UnresolvedAssetJobDefinition", settings: Settings
) -> dg.SensorDefinition:
    """Requests a run of `job` when the sink's stored offsets lag the topic's high watermarks."""

    @dg.sensor(
        name=f"{spec.table}_lag_sensor",
        job=job,
        minimum_interval_seconds=settings.pipeline.sensor_min_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs {job.name} when {spec.table} lags its Kafka topic.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.SensorResult | dg.SkipReason:
        in_flight = context.instance.get_run_records(
            filters=dg.RunsFilter(tags={SINK_TAG: spec.table}, statuses=IN_FLIGHT_STATUSES), limit=1
        )
        if in_flight:
            return dg.SkipReason(f"run {in_flight[0].dagster_run.run_id} is still in flight")
        topic = spec.topic(settings_resource.settings)
        marks = kafka.high_watermarks(topic)
        try:
            with postgres.connect(autocommit=True) as conn:
                stored = read_offsets(conn, spec.table, topic)
        except psycopg.errors.UndefinedTable:
            return dg.SkipReason("sink_offsets does not exist yet: materialize database_schema")
        lag = sum(partition_lag(stored, marks).values())
        if lag == 0:
            return dg.SkipReason(f"{spec.table} is caught up with {topic}")
        run_key = sink_run_key(spec.table, stored, marks)
        if run_key == context.cursor:
            return dg.SkipReason(f"already requested a run for this state ({run_key})")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=run_key, tags={SINK_TAG: spec.table, "openpipe/lag": str(lag)}
                )
            ],
            cursor=run_key,
        )

    return _sensor
