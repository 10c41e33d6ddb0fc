"""Schedules: the sinks' safety net, native-partition upkeep, rollups after each hour/day and
the data-quality checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from openpipe.config import Settings

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

SAFETY_NET_CRON = "*/5 * * * *"
PARTITION_MAINTENANCE_CRON = "5 * * * *"
QUALITY_CHECKS_CRON = "*/15 * * * *"


def build_schedules(
    settings: Settings, jobs: dict[str, UnresolvedAssetJobDefinition]
) -> list[dg.ScheduleDefinition]:
    """Every schedule, each on a job from `jobs` (see openpipe_dagster.jobs)."""
    delay = settings.analytics.rollup_delay_minutes
    return [
        dg.ScheduleDefinition(
            name="sinks_safety_net",
            job=jobs["sinks_safety_net_job"],
            cron_schedule=SAFETY_NET_CRON,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 5 minutes, drain all sinks whatever the sensors did.",
        ),
        dg.ScheduleDefinition(
            name="partition_maintenance",
            job=jobs["partition_maintenance_job"],
            cron_schedule=PARTITION_MAINTENANCE_CRON,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Hourly: daily partitions ahead, expired ones dropped (native path).",
        ),
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
