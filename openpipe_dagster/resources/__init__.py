"""Dagster resources: settings, Kafka, PostgreSQL and the two long-running services.

No connection is made at import; `build_resources` binds them from one `Settings`.
"""

from __future__ import annotations

import dagster as dg

from openpipe.config import Settings
from openpipe_dagster.resources.flink import FlinkService
from openpipe_dagster.resources.kafka import KafkaResource
from openpipe_dagster.resources.postgres import PostgresResource
from openpipe_dagster.resources.settings import SettingsResource
from openpipe_dagster.resources.simulator import SimulatorService

__all__ = [
    "FlinkService",
    "KafkaResource",
    "PostgresResource",
    "SettingsResource",
    "SimulatorService",
    "build_resources",
]


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource the definitions use, bound from settings; secrets from the environment."""
    db = settings.database
    return {
        "settings_resource": SettingsResource(),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.bootstrap_servers),
        "postgres": PostgresResource(
            host=db.host,
            port=db.port,
            dbname=db.name,
            user=db.user,
            password=dg.EnvVar("OPENPIPE__DATABASE__PASSWORD"),
        ),
        "simulator": SimulatorService(),
        "flink": FlinkService(
            rest_url=settings.flink.rest_url,
            ui_base_url=settings.flink.ui_url,
            job_name=settings.flink.job_name,
        ),
    }
