"""The Dagster code location: loads and merges each domain's definitions."""

import dagster as dg

from openpipe_dagster import analytics as analytics_domain
from openpipe_dagster import flink as flink_domain
from openpipe_dagster import infrastructure
from openpipe_dagster import simulator as simulator_domain
from openpipe_dagster import sinks as sinks_domain
from openpipe_dagster import topics as topics_domain

defs = dg.Definitions.merge(
    infrastructure.defs,
    simulator_domain.defs,
    flink_domain.defs,
    sinks_domain.defs,
    topics_domain.defs,
    analytics_domain.defs,
    # Runs are short micro-batches: one process per run, not one more per step.
    dg.Definitions(executor=dg.in_process_executor),
)
