"""Flink domain: the health-window job as an asset, its service resource and supervisor."""

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.flink.assets import deploy_flink_health_job, flink_health_job
from openpipe_dagster.flink.resources import FlinkService
from openpipe_dagster.flink.sensors import flink_health_job_supervisor


def flink_resources() -> dict[str, dg.ConfigurableResource]:
    """The Flink service bound from settings (REST address and job name)."""
    settings = load_settings()
    return {
        "flink": FlinkService(rest_url=settings.flink.rest_url, job_name=settings.flink.job_name)
    }


defs = dg.Definitions(
    assets=[flink_health_job],
    jobs=[deploy_flink_health_job],
    sensors=[flink_health_job_supervisor],
    resources=flink_resources(),
)
