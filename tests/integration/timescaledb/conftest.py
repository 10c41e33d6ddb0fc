"""The TimescaleDB suite: each test gets a scratch database on the stack's server.

It runs when that server has the TimescaleDB extension and preloads it, and skips with
the reason otherwise. The native-partition tests (`database.timescaledb: off`) run on
any server, so both paths stay covered on a machine that has TimescaleDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from openpipe import kafka
from openpipe.config import Settings, load_settings
from openpipe.sinks import SINKS, DrainResult, drain_topic
from openpipe.stack import postgres
from openpipe.storage import db
from openpipe.storage.schema import apply_migrations

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


def timescaledb_skip_reason(settings: Settings) -> str | None:
    """Why the TimescaleDB tests cannot run against the stack's server, or None."""
    d = settings.database
    if not d.manage_local:
        return "needs the local cluster (its superuser makes the scratch databases)"
    if d.timescaledb == "off":
        return "database.timescaledb is off"
    try:
        with postgres.superuser_connect(settings) as conn:
            available = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
            preloaded = postgres.preloads_timescaledb(conn)
    except psycopg.OperationalError as exc:
        return f"the stack's PostgreSQL is not reachable ({exc}); run `make up`"
    if not available:
        return (
            f"the PostgreSQL server on port {d.port} has no timescaledb extension "
            "(pg_available_extensions); install it for this server (README: TimescaleDB)"
        )
    if not preloaded:
        return (
            "TimescaleDB is installed but the running PostgreSQL was started without it; "
            "`make down && make up` restarts it with TimescaleDB preloaded"
        )
    return None


def with_database(settings: Settings, name: str, **database: object) -> Settings:
    """The same settings pointed at database `name` (and other database overrides)."""
    return settings.model_copy(
        update={"database": settings.database.model_copy(update={"name": name, **database})}
    )


def _scratch_database(settings: Settings, *, timescaledb: str) -> Iterator[Settings]:
    """A new empty database like the stack's (owner, reader grants), dropped afterwards."""
    if not settings.database.manage_local:
        pytest.skip("needs the local cluster (its superuser makes the scratch databases)")
    name = f"openpipe_itest_{timescaledb}_{uuid.uuid4().hex[:8]}"
    d = settings.database
    with postgres.superuser_connect(settings) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{d.user}"')
        conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{d.reader_user}"')
    try:
        with postgres.superuser_connect(settings, name) as conn:
            # What sql/bootstrap/roles_and_databases.sql does for the app database.
            if timescaledb != "off":
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute(f'ALTER SCHEMA public OWNER TO "{d.user}"')
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            conn.execute(f'GRANT USAGE ON SCHEMA public TO "{d.reader_user}"')
            conn.execute(
                f'ALTER DEFAULT PRIVILEGES FOR ROLE "{d.user}" IN SCHEMA public '
                f'GRANT SELECT ON TABLES TO "{d.reader_user}"'
            )
        yield with_database(settings, name, timescaledb=timescaledb)
    finally:
        with postgres.superuser_connect(settings) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tsdb(settings: Settings) -> Iterator[Settings]:
    """Settings of an empty TimescaleDB database (extension created, nothing migrated)."""
    reason = timescaledb_skip_reason(settings)
    if reason:
        pytest.skip(reason)
    yield from _scratch_database(settings, timescaledb="on")


@pytest.fixture
def native_db(settings: Settings) -> Iterator[Settings]:
    """Settings of an empty database with `database.timescaledb: off`."""
    yield from _scratch_database(settings, timescaledb="off")


@pytest.fixture
def connect_to() -> Callable[[Settings], psycopg.Connection]:
    """connect_to(settings): an autocommit app-role connection to that database."""
    return lambda s: db.connect(s, application_name="openpipe-tsdb-tests", autocommit=True)


@pytest.fixture
def migrated(tsdb: Settings, connect_to) -> Settings:
    """The TimescaleDB scratch database with every migration applied."""
    with connect_to(tsdb) as conn:
        apply_migrations(conn, tsdb)
    return tsdb


@pytest.fixture
def make_topic(settings: Settings) -> Iterator[Callable[[str], str]]:
    """make_topic(label): a new test-only topic (unique name), deleted afterwards."""
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    created: list[str] = []

    def _make(label: str) -> str:
        name = f"itest-tsdb-{label}-{uuid.uuid4().hex[:8]}"
        kafka.ensure_topics(admin, [name], settings.kafka.partitions, 1)
        created.append(name)
        return name

    yield _make
    if created:
        for future in admin.delete_topics(created).values():
            future.result()


@pytest.fixture
def produce(settings: Settings) -> Callable[[str, list, int], int]:
    """produce(topic, [(key, value, headers), ...], timestamp_ms), every delivery checked."""

    def _produce(topic: str, messages: list, timestamp_ms: int) -> int:
        producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
        failures = kafka.produce_all(producer, topic, messages, timestamp_ms)
        assert not failures, f"undelivered: {failures[:3]}"
        return len(messages)

    return _produce


@pytest.fixture
def drain(connect_to) -> Callable[..., list[DrainResult]]:
    """drain(settings, sink, topic): run the sink on `topic` until it has no lag left."""

    def _drain(settings: Settings, sink: str, topic: str) -> list[DrainResult]:
        results = []
        while True:
            result = drain_topic(
                SINKS[sink],
                settings,
                connect=lambda: connect_to(settings),
                make_consumer=lambda g: kafka.make_consumer(settings.kafka.bootstrap_servers, g),
                topic=topic,
            )
            results.append(result)
            if result.total_lag == 0:
                return results

    return _drain
