"""Schedules: a safety net that drains every sink, and native-partition upkeep."""

import dagster as dg

from openpipe.config import Settings
from openpipe_dagster.sinks.assets import WORKLOAD_TAGS

SAFETY_NET_CRON = "*/5 * * * *"
PARTITION_MAINTENANCE_CRON = "5 * * * *"


def build_schedules(settings: Settings, sink_tables: list[str]) -> list[dg.ScheduleDefinition]:
    """The safety-net schedule (all sinks + dead_letters) and the partition_maintenance one."""
    retries = {"dagster/max_retries": str(settings.dagster.run_retries)}
    safety_net = dg.define_asset_job(
        name="sinks_safety_net_job",
        selection=[*sink_tables, "dead_letters"],
        tags={**retries, **WORKLOAD_TAGS},
        description="Drains every sink once, in case a sensor missed lag (e.g. daemon restart).",
    )
    maintenance = dg.define_asset_job(
        name="partition_maintenance_job", selection=["table_partitions"], tags=retries
    )
    return [
        dg.ScheduleDefinition(
            name="sinks_safety_net",
            job=safety_net,
            cron_schedule=SAFETY_NET_CRON,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 5 minutes, drain all sinks whatever the sensors did.",
        ),
        dg.ScheduleDefinition(
            name="partition_maintenance",
            job=maintenance,
            cron_schedule=PARTITION_MAINTENANCE_CRON,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Hourly: daily partitions ahead, expired ones dropped (native path).",
        ),
    ]
