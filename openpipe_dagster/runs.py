"""Run tags and run states shared by the jobs, sensors and schedules that launch sink runs."""

from __future__ import annotations

import dagster as dg

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
