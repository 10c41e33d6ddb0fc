"""Sensors: alert reports on new alerts, and failed runs recorded in pipeline_incidents."""

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from openpipe.alert_report import decode_key, encode_key, fetch_alerts, key_of
from openpipe.config import Settings
from openpipe_dagster.assets.reports import default_after
from openpipe_dagster.resources import PostgresResource, SettingsResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ALERT_SENSOR_INTERVAL_S = 30
INCIDENT_SQL = (
    "INSERT INTO pipeline_incidents (run_id, job_name, failed_at, error_message, failed_steps, "
    "run_tags) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING"
)


def build_alert_report_sensor(
    job: "UnresolvedAssetJobDefinition",
    settings: Settings,
    *,
    patients: list[str] | None = None,
    name: str = "alert_report_sensor",
) -> dg.SensorDefinition:
    """Launches one alert_report run per batch of new alerts; the cursor is the last alert seen."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=ALERT_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches health_alerts (cursor: the last alert seen, by ingestion order) and "
            "launches alert_report for each new batch of at most analytics.report_max_alerts. "
            "Quiet periods launch nothing."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.SensorResult | dg.SkipReason:
        current = settings_resource.settings
        after = decode_key(context.cursor) or default_after(current, datetime.now(UTC))
        with postgres.connect(autocommit=True) as conn:
            alerts = fetch_alerts(
                conn,
                after=after,
                through=None,
                patients=patients or [],
                limit=current.analytics.report_max_alerts,
            )
        if not alerts:
            return dg.SkipReason(f"no new alerts after {after[0]}")
        through = key_of(alerts[-1])
        digest = hashlib.sha1(encode_key(through).encode()).hexdigest()[:16]
        config = {"after": encode_key(after), "through": encode_key(through)}
        if patients:
            config["patients"] = patients
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"alert_report-{digest}",
                    run_config={"ops": {"alert_report": {"config": config}}},
                    tags={"openpipe/alerts": str(len(alerts))},
                )
            ],
            cursor=encode_key(through),
        )

    return _sensor


def incident_error(context: dg.RunFailureSensorContext) -> tuple[str, list[str]]:
    """The run's failure message followed by each failed step's error, and the failed steps."""
    lines = [context.failure_event.message or "run failed"]
    steps = []
    for event in context.get_step_failure_events():
        steps.append(event.step_key)
        error = event.step_failure_data.error
        lines.append(f"[{event.step_key}] {error.to_string() if error else event.message}")
    return "\n".join(lines), steps


@dg.run_failure_sensor(
    name="record_pipeline_incidents",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run of this code location, with its error, in pipeline_incidents.",
)
def record_pipeline_incidents(
    context: dg.RunFailureSensorContext, postgres: PostgresResource
) -> None:
    run = context.dagster_run
    error, steps = incident_error(context)
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record and record.end_time else None
    failed_at = datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC)
    with postgres.connect(autocommit=True) as conn:
        conn.execute(
            INCIDENT_SQL,
            (run.run_id, run.job_name, failed_at, error, steps, json.dumps(dict(run.tags))),
        )
    context.log.info("recorded incident for run %s of %s", run.run_id, run.job_name)
