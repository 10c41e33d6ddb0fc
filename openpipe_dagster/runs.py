"""Run tags and run states shared by the jobs, sensors and schedules that launch sink runs."""

from __future__ import annotations

import dagster as dg

from openpipe.config import Settings
from openpipe.sinks import SINKS

#: Tags every run of a sink's job with the sink (table) it drains.
SINK_TAG = "openpipe/sink"
#: Tags a sink session with its shard (partitions p % pipeline.sink_shards == shard).
SHARD_TAG = "openpipe/shard"
#: Every sink run carries this tag; dagster.yaml caps how many run at once so that
#: service deploys and rollups always find a free run slot.
WORKLOAD_TAGS = {"openpipe/workload": "sink"}
#: States of a run that has been requested and has not ended.
IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
#: A sink session being stopped still holds its partitions' locks until it ends.
SINK_IN_FLIGHT_STATUSES = [*IN_FLIGHT_STATUSES, dg.DagsterRunStatus.CANCELING]


def sink_runs_in_flight(instance: dg.DagsterInstance, sink: str) -> list[dg.RunRecord]:
    """Runs of `sink` that are queued, starting, running or stopping (one instance query)."""
    return list(
        instance.get_run_records(
            filters=dg.RunsFilter(tags={SINK_TAG: sink}, statuses=SINK_IN_FLIGHT_STATUSES), limit=64
        )
    )


def shard_of(record: dg.RunRecord) -> int:
    """The shard a sink run drains (runs without the tag, e.g. from the UI, drain shard 0)."""
    try:
        return int(record.dagster_run.tags.get(SHARD_TAG, "0"))
    except ValueError:
        return 0


#: Sessions of different sinks last up to this fraction longer than pipeline.session_seconds.
SESSION_SPREAD = 0.1


def session_length_s(settings: Settings, sink: str) -> float:
    """How long a session of `sink` runs: pipeline.session_seconds stretched by up to 10 %,
    evenly over the sinks (15 s apart at the default 900 s). Sessions started together
    (after `openpipe up`) then drift apart instead of handing over at the same moment, when
    six new run processes starting at once took both cores and pushed one sink's freshness
    p95 to 19 s."""
    order = list(SINKS)
    spread = order.index(sink) / len(order) if sink in SINKS else 0.0
    return settings.pipeline.session_seconds * (1 + SESSION_SPREAD * spread)
