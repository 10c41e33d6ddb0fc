"""The alert-report sensor's pacing: at most one run per analytics.report_interval_s,
never while a run of its job is in flight, and a backlog skipped ahead in one report.

Alerts go into the live health_alerts table under this test's own patient id; the runs
the sensor sees are in a throwaway Dagster instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from analytics_rows import delete_where, ensure_days, insert_alert
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

from openpipe.alert_report import EPOCH, decode_key, encode_key
from openpipe_dagster.assets.reports import alert_report
from openpipe_dagster.resources import SettingsResource
from openpipe_dagster.sensors.reports import ReportCursor, build_alert_report_sensor

pytestmark = pytest.mark.integration
JOB = dg.define_asset_job("alert_report_job", selection=[alert_report])
M = timedelta(minutes=1)
S = timedelta(seconds=1)
MAX_ALERTS = 3
INTERVAL_S = 600


@pytest.fixture
def patient(db, tag, base_hour) -> Iterator[str]:
    """This test's patient id; its alerts are deleted afterwards."""
    ensure_days(db, base_hour - timedelta(hours=1), base_hour + timedelta(hours=2))
    patient = f"p-{tag}"
    yield patient
    delete_where(db, "health_alerts", "patient_id", [patient])


@pytest.fixture
def paced(monkeypatch, resources) -> dict[str, object]:
    """Resources whose settings pace reports every INTERVAL_S, MAX_ALERTS alerts per report."""
    monkeypatch.setenv("OPENPIPE__ANALYTICS__REPORT_INTERVAL_S", str(INTERVAL_S))
    monkeypatch.setenv("OPENPIPE__ANALYTICS__REPORT_MAX_ALERTS", str(MAX_ALERTS))
    return {**resources, "settings_resource": SettingsResource()}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def add_alerts(db, patient: str, base_hour: datetime, count: int, first_minute: int = 0) -> None:
    for i in range(first_minute, first_minute + count):
        insert_alert(
            db,
            device_id=f"w-{patient}",
            patient_id=patient,
            alert_type="elevated_heart_rate",
            window_start=base_hour + i * M,
            window_end=base_hour + (i + 1) * M,
            observed_value=120.0 + i,
        )


def add_run(
    instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus
) -> dg.DagsterRun:
    """A run record in `status`, as the daemon would see it (queued runs need their origin)."""
    location = RegisteredCodeLocationOrigin("openpipe_test")
    origin = RemoteRepositoryOrigin(location, "__repository__").get_job_origin(job_name)
    return instance.add_run(
        dg.DagsterRun(job_name=job_name, status=status, remote_job_origin=origin)
    )


def evaluate(instance, resources, patient: str, cursor: str | None):
    sensor = build_alert_report_sensor(
        JOB, resources["settings_resource"].settings, patients=[patient], name="pacing_test"
    )
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor.evaluate_tick(context)


def cursor_launched(seconds_ago: float) -> str:
    """A cursor before all of this test's alerts, whose last report launched `seconds_ago`."""
    after = ((datetime.now(UTC) - timedelta(hours=1)).isoformat(), "", "", EPOCH)
    launched = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return ReportCursor(after=after, launched_at=launched).encode()


def test_second_evaluation_within_the_interval_skips(db, paced, instance, patient, base_hour):
    add_alerts(db, patient, base_hour, 1)
    first = evaluate(instance, paced, patient, None)
    assert len(first.run_requests) == 1
    state = ReportCursor.decode(first.cursor)
    assert abs((datetime.now(UTC) - state.launched_at).total_seconds()) < 60

    add_alerts(db, patient, base_hour, 1, first_minute=5)
    second = evaluate(instance, paced, patient, first.cursor)
    assert second.run_requests == []
    assert "report_interval_s" in second.skip_message
    assert second.cursor == first.cursor, "skipped alerts must stay pending"


def test_launches_once_the_interval_has_passed(db, paced, instance, patient, base_hour):
    add_alerts(db, patient, base_hour, 2)
    almost = evaluate(instance, paced, patient, cursor_launched(INTERVAL_S - 30))
    assert almost.run_requests == []

    cursor = cursor_launched(INTERVAL_S + 1)
    due = evaluate(instance, paced, patient, cursor)
    assert len(due.run_requests) == 1
    assert due.run_requests[0].tags["openpipe/alerts"] == "2"
    state = ReportCursor.decode(due.cursor)
    assert state.after[1] == f"w-{patient}"
    assert state.launched_at > ReportCursor.decode(cursor).launched_at


@pytest.mark.parametrize(
    "status",
    [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ],
)
def test_run_in_flight_skips_and_keeps_the_cursor(db, paced, instance, patient, base_hour, status):
    add_alerts(db, patient, base_hour, MAX_ALERTS)  # a backlog does not override this rule
    run = add_run(instance, JOB.name, status)
    cursor = cursor_launched(INTERVAL_S * 10)

    blocked = evaluate(instance, paced, patient, cursor)
    assert blocked.run_requests == []
    assert run.run_id in blocked.skip_message
    assert blocked.cursor == cursor

    # Once it has ended, and with only other jobs' runs in flight, the report launches.
    instance.report_run_canceled(run)
    add_run(instance, "another_job", status)
    assert len(evaluate(instance, paced, patient, cursor).run_requests) == 1


def test_a_backlog_waits_for_the_interval_and_is_covered_by_one_report(
    db, paced, instance, patient, base_hour
):
    add_alerts(db, patient, base_hour, MAX_ALERTS * 3)
    assert evaluate(instance, paced, patient, cursor_launched(5)).run_requests == []

    due = evaluate(instance, paced, patient, cursor_launched(INTERVAL_S + 1))
    [request] = due.run_requests
    assert request.tags["openpipe/alerts"] == f"{MAX_ALERTS}+"
    through = request.run_config["ops"]["alert_report"]["config"]["through"]
    newest = base_hour + (MAX_ALERTS * 3 - 1) * M
    assert datetime.fromisoformat(ReportCursor.decode(due.cursor).after[3]) == newest
    assert datetime.fromisoformat(decode_key(through)[3]) == newest
    # Everything waiting was covered: even after the interval, nothing is left to report.
    state = ReportCursor.decode(due.cursor)
    later = ReportCursor(after=state.after, launched_at=state.launched_at - 2 * INTERVAL_S * S)
    assert evaluate(instance, paced, patient, later.encode()).run_requests == []


def test_a_truncated_report_says_so(db, paced, patient, base_hour, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENPIPE__ANALYTICS__REPORTS_DIR", str(tmp_path))
    add_alerts(db, patient, base_hour, MAX_ALERTS + 2)
    after = encode_key(((base_hour - timedelta(hours=1)).isoformat(), "", "", EPOCH))
    config = {"after": after, "through": "", "patients": [patient]}
    result = dg.materialize(
        [alert_report],
        resources={**paced, "settings_resource": SettingsResource()},
        run_config={"ops": {"alert_report": {"config": config}}},
    )
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["alerts"].value == MAX_ALERTS
    assert metadata["truncated"].value is True
    assert f"the first {MAX_ALERTS} alerts shown" in metadata["window"].value


def test_cursor_of_the_previous_format_is_read(db, paced, instance, patient, base_hour):
    add_alerts(db, patient, base_hour, 2)
    after = ((datetime.now(UTC) - timedelta(hours=1)).isoformat(), "", "", EPOCH)
    bare = encode_key(after)
    result = evaluate(instance, paced, patient, bare)
    [request] = result.run_requests
    assert request.tags["openpipe/alerts"] == "2"
    assert request.run_config["ops"]["alert_report"]["config"]["after"] == bare
    state = ReportCursor.decode(result.cursor)
    assert state.after[1] == f"w-{patient}" and state.launched_at is not None
