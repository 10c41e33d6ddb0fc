"""Run tags and run states shared by the jobs and the sensors that launch them."""

import dagster as dg

#: Tags every run of a sink's job with the sink (table) it drains.
SINK_TAG = "openpipe/sink"
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
