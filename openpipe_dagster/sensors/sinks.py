"""A lag sensor per sink (one factory): keeps one session in flight per shard of the sink.

A shard with no session in flight gets one when it lags its topic (or, once per stored
state, when its stored offsets are above the topic's high watermarks: that run fails with
what to do, and the failure is recorded as an incident). A session in its last
`handover_lead_s` gets a successor while messages keep coming; the successor waits for
the predecessor's locks, so sessions follow each other without a gap. While every shard
has a session that is not about to end, an evaluation is one query of the run storage:
no Kafka or database connection.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING

import dagster as dg
import psycopg

from openpipe.config import Settings
from openpipe.sinks import SinkSpec, partition_lag
from openpipe.sinks.drain import offsets_ahead, shard_partitions
from openpipe.sinks.writer import read_offsets
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import (
    SHARD_TAG,
    SINK_TAG,
    session_length_s,
    shard_of,
    sink_runs_in_flight,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def sink_run_key(sink: str, stored: dict[int, int], marks: dict[int, int]) -> str:
    """A run key from the stored offsets and the high watermarks: same state, same key."""
    state = ",".join(f"{p}:{stored.get(p, 0)}-{marks[p]}" for p in sorted(marks))
    return f"{sink}-{hashlib.sha1(state.encode()).hexdigest()[:16]}"


def cursor_marks(cursor: str | None) -> dict[int, int]:
    """The high watermarks the last evaluation saw (older cursors, run keys, give {})."""
    try:
        marks = json.loads(cursor or "{}")
    except ValueError:
        return {}
    if not isinstance(marks, dict):
        return {}
    return {int(p): n for p, n in marks.items()}


def handover_lead_s(settings: Settings) -> float:
    """How long before a session's end its successor is requested: three sensor intervals
    (a missed tick or two) plus a run's start on a busy machine, within the session."""
    lead = 3 * settings.pipeline.sensor_min_interval_s + 30
    return min(lead, settings.pipeline.session_seconds / 2)


def plan_shards(
    records: list[dg.RunRecord], shards: int, now: float, session_s: float, lead_s: float
) -> tuple[list[int], dict[int, str]]:
    """(shards without a session in flight, shard -> run id of a session about to end)."""
    by_shard: dict[int, list[dg.RunRecord]] = {}
    for record in records:
        by_shard.setdefault(shard_of(record), []).append(record)
    idle, ending = [], {}
    for shard in range(shards):
        runs = by_shard.get(shard, [])
        if not runs:
            idle.append(shard)
        elif len(runs) == 1:  # two in flight: the successor is already there
            run = runs[0]
            started = run.start_time
            if (
                run.dagster_run.status == dg.DagsterRunStatus.STARTED
                and started is not None
                and now >= started + session_s - lead_s
            ):
                ending[shard] = run.dagster_run.run_id
    return idle, ending


def session_request(
    spec: SinkSpec, shard: int, run_key: str, lag: int, lock_wait_s: float = 0
) -> dg.RunRequest:
    config: dict = {"shard": shard}
    if lock_wait_s:
        config["lock_wait_s"] = lock_wait_s
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {spec.table: {"config": config}}},
        tags={SINK_TAG: spec.table, SHARD_TAG: str(shard), "openpipe/lag": str(lag)},
    )


def build_sink_sensor(
    spec: SinkSpec, job: UnresolvedAssetJobDefinition, settings: Settings
) -> dg.SensorDefinition:
    """Keeps a session of `job` in flight per shard while the sink has messages to drain."""

    @dg.sensor(
        name=f"{spec.table}_lag_sensor",
        job=job,
        minimum_interval_seconds=settings.pipeline.sensor_min_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Keeps one session of {job.name} in flight per shard while {spec.table} lags its "
            "Kafka topic; requests the next session shortly before one ends."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.SensorResult | dg.SkipReason:
        current = settings_resource.settings
        shards = current.pipeline.sink_shards
        lead = handover_lead_s(current)
        idle, ending = plan_shards(
            sink_runs_in_flight(context.instance, spec.table),
            shards,
            time.time(),
            session_length_s(current, spec.table),
            lead,
        )
        if not idle and not ending:
            return dg.SkipReason(f"every shard of {spec.table} has a session in flight")
        topic = spec.topic(current)
        try:
            with postgres.connect(autocommit=True) as conn:
                stored = read_offsets(conn, spec.table, topic)
        except psycopg.errors.UndefinedTable:
            return dg.SkipReason("sink_offsets does not exist yet: materialize database_schema")
        # After the offsets: a session ending meanwhile can only have stored offsets that
        # these marks are at or past.
        marks = kafka.high_watermarks(topic)
        last_marks = cursor_marks(context.cursor)
        cursor = json.dumps({str(p): n for p, n in sorted(marks.items())})
        requests = []
        for shard in idle:
            own = shard_partitions(list(marks), shard, shards)
            own_marks = {p: marks[p] for p in own}
            own_stored = {p: stored[p] for p in own if p in stored}
            if offsets_ahead(own_stored, own_marks):
                # Once per stored state: the run fails saying what to do (an incident).
                key = sink_run_key(f"{spec.table}-s{shard}-ahead", own_stored, own_stored)
                requests.append(session_request(spec, shard, key, 0))
                continue
            lag = sum(partition_lag(own_stored, own_marks).values())
            if lag:
                key = sink_run_key(f"{spec.table}-s{shard}", own_stored, own_marks)
                requests.append(session_request(spec, shard, key, lag))
        for shard, predecessor in ending.items():
            own = shard_partitions(list(marks), shard, shards)
            if any(marks[p] != last_marks.get(p) for p in own):  # messages are still coming
                key = f"{spec.table}-s{shard}-after-{predecessor}"
                requests.append(session_request(spec, shard, key, 0, lock_wait_s=2 * lead))
        if not requests:
            return dg.SensorResult(
                skip_reason=f"{spec.table}: nothing to drain outside running sessions",
                cursor=cursor,
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor
