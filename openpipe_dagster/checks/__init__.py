"""Asset checks: fault detection, sink freshness, bad-data rate, stream against batch."""

from openpipe_dagster.checks.quality import build_quality_checks
from openpipe_dagster.checks.stream_batch import STREAM_BATCH_CHECK

__all__ = ["STREAM_BATCH_CHECK", "build_quality_checks"]
