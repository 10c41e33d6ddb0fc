"""The Dagster code location: loads and merges each domain's definitions."""

import dagster as dg

from openpipe_dagster import infrastructure

defs = dg.Definitions.merge(
    infrastructure.defs,
)
