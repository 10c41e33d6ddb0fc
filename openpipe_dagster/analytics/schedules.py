"""Jobs and schedules named for what they do: rollups after each hour/day, quality checks."""

from typing import TYPE_CHECKING

import dagster as dg

from openpipe.config import Settings
from openpipe_dagster.analytics.assets import DAILY, HOURLY, HOURLY_ROLLUPS, alert_rollup_daily
from openpipe_dagster.analytics.reports import alert_report

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

QUALITY_CHECKS_CRON = "*/15 * * * *"


def build_jobs(
    settings: Settings, checks: list[dg.AssetChecksDefinition]
) -> dict[str, "UnresolvedAssetJobDefinition"]:
    """The analytics jobs by name."""
    retries = {"dagster/max_retries": str(settings.dagster.run_retries)}
    jobs = [
        dg.define_asset_job(
            "hourly_rollups_job",
            selection=HOURLY_ROLLUPS,
            partitions_def=HOURLY,
            tags=retries,
            description="Recompute the hourly rollups (health metrics, restaurant sales, GPS).",
        ),
        dg.define_asset_job(
            "daily_alert_rollup_job",
            selection=[alert_rollup_daily],
            partitions_def=DAILY,
            tags=retries,
            description="Recompute the daily alert rollup.",
        ),
        dg.define_asset_job(
            "alert_report_job",
            selection=[alert_report],
            description="Write the HTML alert report for a batch of alerts.",
        ),
        dg.define_asset_job(
            "data_quality_checks_job",
            selection=dg.AssetSelection.checks(*checks),
            description="Fault detection, sink freshness and bad-data rate checks.",
        ),
    ]
    return {job.name: job for job in jobs}


def build_schedules(settings: Settings, jobs: dict[str, "UnresolvedAssetJobDefinition"]) -> list:
    """Rollups of the latest closed hour/day, a little after it closes; checks every 15 min."""
    delay = settings.analytics.rollup_delay_minutes
    return [
        dg.build_schedule_from_partitioned_job(
            jobs["hourly_rollups_job"],
            name="hourly_rollups_after_each_hour",
            minute_of_hour=delay,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"{delay} min past each hour: the hourly rollups of the hour that closed.",
        ),
        dg.build_schedule_from_partitioned_job(
            jobs["daily_alert_rollup_job"],
            name="daily_alert_rollup_after_midnight",
            hour_of_day=0,
            minute_of_hour=delay,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"00:{delay:02d} UTC: the alert rollup of the day that closed.",
        ),
        dg.ScheduleDefinition(
            name="data_quality_checks_every_15_minutes",
            job=jobs["data_quality_checks_job"],
            cron_schedule=QUALITY_CHECKS_CRON,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 15 minutes: fault detection, sink freshness, bad-data rates.",
        ),
    ]
