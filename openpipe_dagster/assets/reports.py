"""The alert_report asset (HTML under analytics.reports_dir) and the pipeline_incidents table."""

import shutil
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from openpipe.alert_report import (
    EPOCH,
    CursorKey,
    decode_key,
    fetch_alerts,
    fetch_history,
    fetch_series,
    render_report,
    reports_dir,
)
from openpipe.config import Settings
from openpipe_dagster.resources import PostgresResource, SettingsResource

GROUP = "reports"
OWNERS = ["team:analytics"]

ALERT_REPORT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("patient_id", "string", description="one section per patient"),
        dg.TableColumn("alert_time", "timestamptz"),
        dg.TableColumn("alert_type", "string"),
        dg.TableColumn("device_id", "string"),
        dg.TableColumn("window_start", "timestamptz"),
        dg.TableColumn("window_end", "timestamptz"),
        dg.TableColumn("observed_value", "float", description="window average"),
        dg.TableColumn("threshold", "float"),
        dg.TableColumn("severity", "string"),
        dg.TableColumn("chart", "svg", description="readings around the alerts, threshold"),
    ]
)
INCIDENTS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("run_id", "string", constraints=dg.TableColumnConstraints(unique=True)),
        dg.TableColumn("job_name", "string"),
        dg.TableColumn("failed_at", "timestamptz"),
        dg.TableColumn("error_message", "string", description="run failure and step errors"),
        dg.TableColumn("failed_steps", "string[]"),
        dg.TableColumn("run_tags", "json"),
        dg.TableColumn("recorded_at", "timestamptz"),
    ]
)

pipeline_incidents = dg.AssetSpec(
    key="pipeline_incidents",
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    deps=[dg.AssetKey("database_schema")],
    description=(
        "Failed Dagster runs with their error, one row per run, written by the "
        "record_pipeline_incidents run-failure sensor."
    ),
    metadata={
        "dagster/column_schema": INCIDENTS_SCHEMA,
        "dagster/table_name": "pipeline_incidents",
    },
)


class AlertReportConfig(dg.Config):
    """Which alerts to report: a cursor range (as the sensor sets it) and optional patients."""

    after: str = ""  # exclusive cursor key; empty: the last analytics.report_lookback_hours
    through: str = ""  # inclusive cursor key; empty: up to the newest alert
    patients: list[str] = Field(default_factory=list)  # empty: every patient


def default_after(settings: Settings, now: datetime) -> CursorKey:
    """The cursor key before the alerts of the last report_lookback_hours."""
    since = now - timedelta(hours=settings.analytics.report_lookback_hours)
    return (since.isoformat(), "", "", EPOCH)


@dg.asset(
    group_name=GROUP,
    kinds={"html", "postgres"},
    owners=OWNERS,
    deps=[
        dg.AssetKey("health_alerts"),
        dg.AssetKey("wearable_readings"),
        dg.AssetKey("alert_rollup_daily"),
    ],
    metadata={"dagster/column_schema": ALERT_REPORT_SCHEMA},
    description=(
        "HTML report of new health alerts under analytics.reports_dir: per patient the alerts, "
        "the readings around them (analytics.report_context_minutes) with a small chart, and "
        "the daily alert counts from alert_rollup_daily, at most analytics.report_max_alerts "
        "alerts (the window says when more fell in it). Launched by alert_report_sensor; "
        "path and counts are recorded as metadata."
    ),
)
def alert_report(
    context: dg.AssetExecutionContext,
    config: AlertReportConfig,
    postgres: PostgresResource,
    settings_resource: SettingsResource,
) -> dg.MaterializeResult:
    settings = settings_resource.settings
    now = datetime.now(UTC)
    after = decode_key(config.after) or default_after(settings, now)
    through = decode_key(config.through)
    with postgres.connect(autocommit=True) as conn:
        shown = settings.analytics.report_max_alerts
        alerts = fetch_alerts(
            conn, after=after, through=through, patients=config.patients, limit=shown + 1
        )
        truncated = len(alerts) > shown
        alerts = alerts[:shown]
        series = fetch_series(conn, alerts, settings)
        patients = sorted({a["patient_id"] for a in alerts})
        history = fetch_history(conn, patients, now) if patients else []
    window = f"after {after[0]}" + (f" through {through[0]}" if through else "")
    if truncated:
        window += (
            f"; the first {shown} alerts shown (analytics.report_max_alerts), more in the table"
        )
    page = render_report(
        alerts,
        series,
        history,
        generated_at=now,
        window=window,
        context_minutes=settings.analytics.report_context_minutes,
    )
    directory = reports_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"alert_report_{now:%Y%m%dT%H%M%S}_{context.run.run_id[:8]}.html"
    path.write_text(page, encoding="utf-8")
    shutil.copyfile(path, directory / "alert_report_latest.html")
    by_type: dict[str, int] = {}
    for a in alerts:
        by_type[a["alert_type"]] = by_type.get(a["alert_type"], 0) + 1
    context.log.info("alert report %s: %d alerts, %d patients", path, len(alerts), len(patients))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "alerts": len(alerts),
            "patients": len(patients),
            "readings": sum(len(s.points) for s in series),
            "alerts_by_type": dg.MetadataValue.json(by_type),
            "window": window,
            "truncated": truncated,
        }
    )
