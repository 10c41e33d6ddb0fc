"""Exactly-once micro-batch sinks from Kafka topics into PostgreSQL tables (docs/architecture.md §5, §6)."""

from openpipe.sinks.drain import DrainResult, drain_topic, lock_name, partition_lag
from openpipe.sinks.specs import SINKS, SinkSpec

__all__ = ["SINKS", "DrainResult", "SinkSpec", "drain_topic", "lock_name", "partition_lag"]
