"""Schedules: the sinks' safety net, native-partition upkeep, rollups after each hour/day and
the data-quality checks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dagster as dg

from openpipe.config import Settings
from openpipe.sinks import SINKS, partition_lag
from openpipe.sinks.writer import read_offsets
from openpipe_dagster.jobs import catch_up_config
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import SINK_TAG, sink_runs_in_flight

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

SAFETY_NET_CRON = "*/5 * * * *"
PARTITION_MAINTENANCE_CRON = "5 * * * *"
QUALITY_CHECKS_CRON = "*/15 * * * *"
#: A sink whose last session ended this recently is the lag sensor's to restart.
QUIET_BEFORE_SAFETY_NET_S = 120


def lagging_idle_sinks(
    instance: dg.DagsterInstance,
    kafka: KafkaResource,
    postgres: PostgresResource,
    settings: Settings,
    now: float,
) -> dict[str, int]:
    """Sink -> lag, for sinks with no session in flight and none ended in the last
    QUIET_BEFORE_SAFETY_NET_S that lag their topic (what a sensor should have caught)."""
    lagging = {}
    for table, spec in SINKS.items():
        if sink_runs_in_flight(instance, table):
            continue
        last = instance.get_run_records(filters=dg.RunsFilter(tags={SINK_TAG: table}), limit=1)
        if last and last[0].end_time and now - last[0].end_time < QUIET_BEFORE_SAFETY_NET_S:
            continue
        topic = spec.topic(settings)
        with postgres.connect(autocommit=True) as conn:
            stored = read_offsets(conn, table, topic)
        lag = sum(partition_lag(stored, kafka.high_watermarks(topic)).values())
        if lag:
            lagging[table] = lag
    return lagging


def build_safety_net(
    settings: Settings, job: UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition:
    """Every 5 minutes: catch up the sinks that lag with no session in flight (a sensor
    missed them, e.g. across a daemon restart); skips after one run-storage query per sink
    while sessions run."""

    @dg.schedule(
        name="sinks_safety_net",
        job=job,
        cron_schedule=SAFETY_NET_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Every 5 minutes: drain to the high watermarks the sinks that lag with no "
            "session in flight (what a lag sensor missed)."
        ),
    )
    def _safety_net(
        context: dg.ScheduleEvaluationContext,
        kafka: KafkaResource,
        postgres: PostgresResource,
        settings_resource: SettingsResource,
    ) -> dg.RunRequest | dg.SkipReason:
        lagging = lagging_idle_sinks(
            context.instance, kafka, postgres, settings_resource.settings, time.time()
        )
        if not lagging:
            return dg.SkipReason("every sink has a session in flight or nothing to drain")
        return dg.RunRequest(
            asset_selection=[dg.AssetKey(table) for table in lagging],
            run_config=catch_up_config(lagging),
            tags={"openpipe/lagging": ",".join(f"{t}:{n}" for t, n in lagging.items())},
        )

    return _safety_net


def build_schedules(
    settings: Settings, jobs: dict[str, UnresolvedAssetJobDefinition]
) -> list[dg.ScheduleDefinition]:
    """Every schedule, each on a job from `jobs` (see openpipe_dagster.jobs)."""
    delay = settings.analytics.rollup_delay_minutes
    return [
        build_safety_net(settings, jobs["sinks_safety_net_job"]),
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
