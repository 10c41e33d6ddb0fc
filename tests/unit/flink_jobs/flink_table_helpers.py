"""Helpers for bounded tests of the health-window job: messages, table envs, collecting rows."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from pyflink.table import DataTypes, Table, TableEnvironment

from flink_jobs import health_sql, health_windows
from openpipe.config import Settings

#: Start of the first test window (epoch ms, a multiple of ten minutes).
T0_MS = int(datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)


def ms(seconds: float) -> int:
    """T0 plus a number of seconds, in epoch milliseconds."""
    return T0_MS + int(seconds * 1000)


def encode(event: dict | bytes | None) -> bytes | None:
    """The Kafka value of an event: dicts as JSON, bytes and None as they are."""
    return orjson.dumps(event) if isinstance(event, dict) else event


def source_row(value: bytes | None, kafka_ms: int) -> tuple[bytearray | None, datetime]:
    """A (payload, kafka_ts) row: the Kafka value's bytes as they are, and its timestamp."""
    payload = None if value is None else bytearray(value)  # PyFlink's BYTES wants bytearray
    return payload, datetime.fromtimestamp(kafka_ms / 1000, tz=UTC)


def batch_env(settings: Settings) -> TableEnvironment:
    """A bounded (batch) table environment on a one-slot local mini-cluster."""
    t_env = health_windows.stream_table_env({"parallelism.default": "1"}, batch=True)
    health_windows.configure(t_env, settings)
    return t_env


def values_source(
    t_env: TableEnvironment, messages: list[tuple[bytes | None, int]], settings: Settings
) -> Table:
    """Source rows from values, decoded by the job's parse function (the format's parser)."""
    schema = DataTypes.ROW(
        [
            DataTypes.FIELD("payload", DataTypes.BYTES()),
            DataTypes.FIELD("kafka_ts", DataTypes.TIMESTAMP_LTZ(3)),
        ]
    )
    raw = t_env.from_elements([source_row(v, k) for v, k in messages], schema)
    t_env.create_temporary_view("raw_messages", raw)
    decoded = ", ".join(f"p.{name}" for name, _ in health_sql.DECODED_COLUMNS)
    rules = health_sql.wearable_rules(settings).replace("'", "''")
    return t_env.sql_query(
        f"SELECT {decoded}, kafka_ts FROM (SELECT {health_sql.PARSE_FUNCTION}(payload, "
        f"'{rules}') AS p, kafka_ts FROM raw_messages)"
    )


def rounded(row: tuple) -> tuple:
    """Floats rounded to 6 places, so averages summed in any order compare equal."""
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def collect(table: Table) -> set[tuple]:
    """All rows of a bounded table as a set of rounded tuples (order does not matter)."""
    with table.execute().collect() as results:
        return {rounded(tuple(row)) for row in results}
