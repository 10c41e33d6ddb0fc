"""pending_migrations_sensor: a fresh stack, or an upgrade, migrates itself."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import dagster as dg

from openpipe.storage.schema import pending_migrations
from openpipe_dagster.resources import PostgresResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_schema_sensor(schema_job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Materializes database_schema whenever a migration file is not applied yet."""

    @dg.sensor(
        name="pending_migrations_sensor",
        job=schema_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Applies new files in sql/migrations/ (a fresh stack, or after an upgrade).",
    )
    def _sensor(postgres: PostgresResource) -> dg.SensorResult | dg.SkipReason:
        with postgres.connect(autocommit=True) as conn:
            pending = pending_migrations(conn)
        if not pending:
            return dg.SkipReason("every migration is applied")
        run_key = "migrate-" + hashlib.sha1(",".join(pending).encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=run_key, tags={"dagster/priority": "20"})]
        )

    return _sensor
