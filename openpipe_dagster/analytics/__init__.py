"""Analytics domain: partitioned rollups, data-quality checks, alert reports, incidents."""

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.analytics.assets import ROLLUP_ASSETS
from openpipe_dagster.analytics.checks import build_quality_checks
from openpipe_dagster.analytics.reports import alert_report, pipeline_incidents
from openpipe_dagster.analytics.schedules import build_jobs, build_schedules
from openpipe_dagster.analytics.sensors import build_alert_report_sensor, record_pipeline_incidents

_settings = load_settings()
_checks = build_quality_checks(_settings)
_jobs = build_jobs(_settings, _checks)

defs = dg.Definitions(
    assets=[*ROLLUP_ASSETS, alert_report, pipeline_incidents],
    asset_checks=_checks,
    jobs=list(_jobs.values()),
    schedules=build_schedules(_settings, _jobs),
    sensors=[
        build_alert_report_sensor(_jobs["alert_report_job"], _settings),
        record_pipeline_incidents,
    ],
)
