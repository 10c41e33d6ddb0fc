"""Fixtures for the analytics integration tests: the real database from config.

Test rows use ids with a per-session random suffix (and a test-only Kafka topic name), so
they never collide with live data; each test deletes what it inserted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from openpipe.config import Settings
from openpipe.storage.db import connect
from openpipe.storage.schema import apply_migrations
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def db(stack: Settings) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the app database, with all migrations applied."""
    with connect(stack, autocommit=True) as conn:
        apply_migrations(conn, stack)
        yield conn


@pytest.fixture(scope="session")
def resources(stack: Settings) -> dict[str, object]:
    """The shared Dagster resources bound to the configured stack."""
    d = stack.database
    return {
        "settings_resource": SettingsResource(),
        "kafka": KafkaResource(bootstrap_servers=stack.kafka.bootstrap_servers),
        "postgres": PostgresResource(
            host=d.host, port=d.port, dbname=d.name, user=d.user, password=d.password
        ),
    }


@pytest.fixture
def tag() -> str:
    """A suffix that makes this test's ids unique."""
    return uuid.uuid4().hex[:10]


#: Tables whose live rows the whole-hour checks (stream vs batch) would count as the test's.
_LIVE_TABLES = (
    ("wearable_readings", "event_time"),
    ("health_metrics_1min", "window_start"),
    ("health_metrics_10min", "window_start"),
)


@pytest.fixture(scope="session")
def base_hour(db: psycopg.Connection) -> datetime:
    """A closed UTC hour at least two days back, inside retention, with no live data.

    Some checks read every device of an hour, so an hour the running stack filled would
    add its windows to the test's counts: step back an hour at a time until none does.
    """
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    for _ in range(26 * 24):
        since, until = hour - timedelta(minutes=10), hour + timedelta(hours=3)
        if not any(
            db.execute(
                f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} >= %s AND {column} < %s)",
                (since, until),
            ).fetchone()[0]
            for table, column in _LIVE_TABLES
        ):
            return hour
        hour -= timedelta(hours=1)
    pytest.skip("no hour in the last 28 days is free of live data")
