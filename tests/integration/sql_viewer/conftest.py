"""Fixtures for the viewer's integration tests: the real database (and Kafka) from config.

Test tables live in a schema of their own, created as the app role and dropped at the
end, so these tests depend on no other component's tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from viewer_support import Fixture

from openpipe.config import Settings, load_settings
from sql_viewer.main import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def owner(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection as the app role, which owns the test schema."""
    try:
        conn = psycopg.connect(settings.database.dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the database from config is not reachable ({exc}); run `make up`")
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def fixture_tables(owner: psycopg.Connection, settings: Settings) -> Iterator[Fixture]:
    schema = f"viewer_test_{os.getpid()}"
    ident = sql.Identifier(schema)
    reader = sql.Identifier(settings.database.reader_user)
    statements = [
        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident),
        sql.SQL("CREATE SCHEMA {}").format(ident),
        sql.SQL(
            "CREATE TABLE {}.devices (device_id text PRIMARY KEY, patient_id text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now(), updated_by text)"
        ).format(ident),
        sql.SQL(
            "CREATE TABLE {}.readings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "device_id text NOT NULL, event_time timestamptz NOT NULL, heart_rate_bpm "
            "double precision, value numeric(8,2), created_at timestamptz DEFAULT now(), "
            "updated_by text DEFAULT 'sink')"
        ).format(ident),
        sql.SQL(
            "INSERT INTO {}.devices (device_id, patient_id, updated_by) "
            "SELECT 'w-' || i, 'p-' || (i % 4), 'seed' FROM generate_series(1, 10) i"
        ).format(ident),
        sql.SQL(
            "INSERT INTO {}.readings (device_id, event_time, heart_rate_bpm, value) "
            "SELECT 'w-' || (1 + i % 10), timestamptz '2024-05-01 00:00Z' + i * interval '1 min',"
            " 60 + (i % 40) + 0.5, (i % 97)::numeric / 3 FROM generate_series(1, 500) i"
        ).format(ident),
        sql.SQL("CREATE TYPE {}.severity AS ENUM ('warning', 'high', 'critical')").format(ident),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, reader),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, reader),
        sql.SQL("ANALYZE {}.readings").format(ident),
    ]
    _drop_stale_schemas(owner)
    for statement in statements:
        owner.execute(statement)
    yield Fixture(
        schema=schema,
        readings=f"{schema}.readings",
        devices=f"{schema}.devices",
        sequence=f"{schema}.readings_id_seq",
        owner_pid=owner.info.backend_pid,
    )
    # A fresh connection: the session one may have been cut by a database restart.
    with psycopg.connect(settings.database.dsn(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))


def _drop_stale_schemas(owner: psycopg.Connection) -> None:
    """Drop test schemas left by runs whose process is gone (e.g. killed mid-run)."""
    names = owner.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname ~ '^viewer_test_[0-9]+$'"
    ).fetchall()
    for (name,) in names:
        pid = int(name.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            owner.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        except PermissionError:
            pass


@pytest.fixture(scope="session")
def client(fixture_tables: Fixture) -> Iterator[TestClient]:
    """The viewer with the configured limits and no token."""
    with TestClient(create_app(load_settings(), token="")) as test_client:
        yield test_client
