"""Sensors: alert reports on new alerts, and failed runs recorded in pipeline_incidents."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from openpipe.alert_report import CursorKey, encode_key, fetch_alerts, key_of, newest_alert_key
from openpipe.config import Settings
from openpipe_dagster.assets.reports import default_after
from openpipe_dagster.resources import PostgresResource, SettingsResource
from openpipe_dagster.runs import IN_FLIGHT_STATUSES

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ALERT_SENSOR_INTERVAL_S = 30
INCIDENT_SQL = (
    "INSERT INTO pipeline_incidents (run_id, job_name, failed_at, error_message, failed_steps, "
    "run_tags) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING"
)


@dataclass(frozen=True)
class ReportCursor:
    """The alert-report sensor's cursor: the last alert reported and when that report launched."""

    after: CursorKey | None = None
    launched_at: datetime | None = None

    def encode(self) -> str:
        return json.dumps(
            {
                "after": list(self.after) if self.after else None,
                "launched_at": self.launched_at.isoformat() if self.launched_at else None,
            }
        )

    @classmethod
    def decode(cls, text: str | None) -> "ReportCursor":
        """Reads `encode`'s JSON object, or the bare alert key that older versions wrote."""
        if not text:
            return cls()
        try:
            value = json.loads(text)
            if isinstance(value, list):
                return cls(after=_key(value))
            after, launched = value["after"], value["launched_at"]
            return cls(
                after=_key(after) if after else None,
                launched_at=datetime.fromisoformat(launched) if launched else None,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(
                f"alert report sensor cursor {text!r} is neither an alert key nor "
                '{"after": [...], "launched_at": "<ISO time>"} '
                f"({exc}); clear the sensor's cursor in the Dagster UI to start again"
            ) from exc


def _key(value: list) -> CursorKey:
    if len(value) != 4 or not all(isinstance(part, str) for part in value):
        raise ValueError(f"an alert key is four strings, got {value!r}")
    return tuple(value)


def report_wait_s(launched_at: datetime | None, now: datetime, interval_s: float) -> float:
    """Seconds before the next report may launch: 0 when never launched or the clock went back."""
    if launched_at is None or launched_at > now:
        return 0.0
    return max(0.0, interval_s - (now - launched_at).total_seconds())


def build_alert_report_sensor(
    job: "UnresolvedAssetJobDefinition",
    settings: Settings,
    *,
    patients: list[str] | None = None,
    name: str = "alert_report_sensor",
) -> dg.SensorDefinition:
    """Launches alert_report for new alerts, at most one run per analytics.report_interval_s
    and never while one is in flight; a backlog is skipped ahead to the newest alert."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=ALERT_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches health_alerts (cursor: the last alert reported, by ingestion order, and "
            "when that report launched) and launches alert_report for the new alerts: at most "
            "one run per analytics.report_interval_s, never while a run of the job is queued "
            "or running. A report shows at most analytics.report_max_alerts alerts; when more "
            "wait, it covers up to the newest one and says how many it leaves out. Quiet "
            "periods launch nothing."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.SensorResult | dg.SkipReason:
        current = settings_resource.settings
        analytics = current.analytics
        state = ReportCursor.decode(context.cursor)
        now = datetime.now(UTC)
        after = state.after or default_after(current, now)
        wait_s = report_wait_s(state.launched_at, now, analytics.report_interval_s)
        if wait_s > 0:
            return dg.SkipReason(
                f"next report in {wait_s:.0f} s at the earliest "
                f"(analytics.report_interval_s = {analytics.report_interval_s})"
            )
        with postgres.connect(autocommit=True) as conn:
            alerts = fetch_alerts(
                conn,
                after=after,
                through=None,
                patients=patients or [],
                limit=analytics.report_max_alerts,
            )
            if not alerts:
                return dg.SkipReason(f"no new alerts after {after[0]}")
            # A full batch: more may wait. The report covers up to the newest alert and shows
            # the first report_max_alerts of them, so a backlog costs one report, not many.
            backlog = len(alerts) >= analytics.report_max_alerts
            through = key_of(alerts[-1])
            if backlog:
                through = newest_alert_key(conn, patients or []) or through
        # Only the ticks that would launch ask the instance; a queued or running report
        # keeps the cursor where it is, so the next report covers these alerts too.
        in_flight = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=job.name, statuses=IN_FLIGHT_STATUSES), limit=1
        )
        if in_flight:
            run = in_flight[0].dagster_run
            return dg.SkipReason(
                f"{job.name} run {run.run_id} is {run.status.value}; "
                f"{len(alerts)}{'+' if backlog else ''} new alerts wait for the next report"
            )
        digest = hashlib.sha1(encode_key(through).encode()).hexdigest()[:16]
        config = {"after": encode_key(after), "through": encode_key(through)}
        if patients:
            config["patients"] = patients
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"alert_report-{digest}",
                    run_config={"ops": {"alert_report": {"config": config}}},
                    tags={"openpipe/alerts": f"{len(alerts)}{'+' if backlog else ''}"},
                )
            ],
            cursor=ReportCursor(after=through, launched_at=now).encode(),
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
