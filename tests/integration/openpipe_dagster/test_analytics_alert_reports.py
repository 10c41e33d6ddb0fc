"""The alert-report sensor launches one run per new batch and none when quiet; the report
file holds the alerts; the run-failure sensor records incidents. Its pacing (interval,
run in flight, backlog) is tested in test_alert_report_pacing.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from analytics_rows import delete_where, ensure_days, insert_alert, insert_reading

from openpipe_dagster.assets.reports import alert_report
from openpipe_dagster.sensors.reports import (
    ReportCursor,
    build_alert_report_sensor,
    record_pipeline_incidents,
)

pytestmark = pytest.mark.integration
M = timedelta(minutes=1)
JOB = dg.define_asset_job("alert_report_job", selection=[alert_report])


def evaluate(sensor, instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def interval_passed(cursor: str, settings) -> str:
    """The cursor as if its report had launched one report interval ago."""
    state = ReportCursor.decode(cursor)
    ago = timedelta(seconds=settings.analytics.report_interval_s + 1)
    return ReportCursor(state.after, datetime.now(UTC) - ago).encode()


def test_alert_report_sensor_and_report(db, resources, tag, base_hour, settings):
    patient, device = f"p-{tag}", f"w-{tag}"
    sensor = build_alert_report_sensor(
        JOB, settings, patients=[patient], name="alert_report_sensor_test"
    )
    instance = dg.DagsterInstance.ephemeral()
    written: list[Path] = []
    ensure_days(db, base_hour - timedelta(hours=1), base_hour + timedelta(hours=2))
    try:
        quiet = evaluate(sensor, instance, resources, None)
        assert quiet.run_requests == []
        assert "no new alerts" in quiet.skip_message

        for i in range(5):
            insert_reading(
                db,
                device_id=device,
                patient_id=patient,
                at=base_hour + (i + 2) * M,
                heart_rate=95 + 5 * i,
            )
        # Recent ingestion (default now()) keeps these inside the sensor's first lookback.
        insert_alert(
            db,
            device_id=device,
            patient_id=patient,
            alert_type="elevated_heart_rate",
            window_start=base_hour + 3 * M,
            window_end=base_hour + 4 * M,
            observed_value=110.0,
        )
        insert_alert(
            db,
            device_id=device,
            patient_id=patient,
            alert_type="elevated_heart_rate",
            window_start=base_hour + 4 * M,
            window_end=base_hour + 5 * M,
            observed_value=115.0,
        )
        first = evaluate(sensor, instance, resources, None)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_key.startswith("alert_report-")
        assert request.tags["openpipe/alerts"] == "2"
        assert ReportCursor.decode(first.cursor).after[1:3] == (device, "elevated_heart_rate")

        again = evaluate(sensor, instance, resources, interval_passed(first.cursor, settings))
        assert again.run_requests == [], "the same alerts must not launch a second run"

        # The run the sensor asked for writes a report holding both alerts and the readings.
        result = dg.materialize(
            [alert_report], resources=resources, instance=instance, run_config=request.run_config
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("alert_report")
        meta = materialization.metadata
        assert (meta["alerts"].value, meta["patients"].value) == (2, 1)
        assert meta["readings"].value == 5
        report = Path(meta["path"].value)
        written.append(report)
        page = report.read_text(encoding="utf-8")
        assert f"Patient {patient}" in page
        assert page.count('class="alert-row"') == 2
        assert "110.0" in page and "115.0" in page
        assert "<polyline" in page and "<circle" in page

        # A second batch: exactly one more run, covering only the new alert.
        insert_alert(
            db,
            device_id=device,
            patient_id=patient,
            alert_type="elevated_bp_systolic",
            window_start=base_hour + 10 * M,
            window_end=base_hour + 11 * M,
            observed_value=150.0,
            threshold=140.0,
        )
        second = evaluate(sensor, instance, resources, interval_passed(first.cursor, settings))
        assert len(second.run_requests) == 1
        assert second.run_requests[0].tags["openpipe/alerts"] == "1"
        assert second.run_requests[0].run_key != request.run_key
        result = dg.materialize(
            [alert_report],
            resources=resources,
            instance=instance,
            run_config=second.run_requests[0].run_config,
        )
        [materialization] = result.asset_materializations_for_node("alert_report")
        assert materialization.metadata["alerts"].value == 1
        report = Path(materialization.metadata["path"].value)
        written.append(report)
        page = report.read_text(encoding="utf-8")
        assert "elevated_bp_systolic" in page and "elevated_heart_rate" not in page
        last = evaluate(sensor, instance, resources, interval_passed(second.cursor, settings))
        assert last.run_requests == []
    finally:
        delete_where(db, "health_alerts", "patient_id", [patient])
        delete_where(db, "wearable_readings", "patient_id", [patient])
        for report in written:
            report.unlink(missing_ok=True)


@dg.op
def fail_on_purpose() -> None:
    raise RuntimeError("analytics test: deliberate failure")


@dg.job
def failing_job() -> None:
    fail_on_purpose()


def test_run_failure_sensor_records_incident(db, resources):
    instance = dg.DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = result.dagster_run
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")

    def run_sensor() -> None:
        with dg.build_run_status_sensor_context(
            sensor_name="record_pipeline_incidents",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"postgres": resources["postgres"]},
        ) as context:
            record_pipeline_incidents(context.for_run_failure())

    try:
        run_sensor()
        row = db.execute(
            "SELECT job_name, error_message, failed_steps FROM pipeline_incidents WHERE run_id = %s",
            (run.run_id,),
        ).fetchone()
        assert row is not None, "no incident recorded"
        job_name, error, steps = row
        assert job_name == "failing_job"
        assert "deliberate failure" in error
        assert steps == ["fail_on_purpose"]
        # A re-evaluated tick changes nothing.
        run_sensor()
        (count,) = db.execute(
            "SELECT count(*) FROM pipeline_incidents WHERE run_id = %s", (run.run_id,)
        ).fetchone()
        assert count == 1
    finally:
        db.execute("DELETE FROM pipeline_incidents WHERE run_id = %s", (run.run_id,))
