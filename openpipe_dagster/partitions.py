"""Time partitions of the rollups: UTC hours and days from analytics.partitions_start."""

import dagster as dg

from openpipe.config import Settings


def hourly_partitions(settings: Settings) -> dg.HourlyPartitionsDefinition:
    """One partition per closed UTC hour (the current hour appears once it has ended)."""
    return dg.HourlyPartitionsDefinition(
        start_date=f"{settings.analytics.partitions_start:%Y-%m-%d}-00:00", timezone="UTC"
    )


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per closed UTC day."""
    return dg.DailyPartitionsDefinition(
        start_date=f"{settings.analytics.partitions_start:%Y-%m-%d}", timezone="UTC"
    )
