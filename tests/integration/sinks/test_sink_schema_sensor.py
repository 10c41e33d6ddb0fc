"""The pending-migrations sensor materializes database_schema only when a file is unapplied."""

import uuid

import dagster as dg
import psycopg
import pytest

from openpipe.storage.migrations import list_migrations
from openpipe.storage.schema import apply_migrations, pending_migrations
from openpipe_dagster.resources import PostgresResource
from openpipe_dagster.sensors.infrastructure import build_schema_sensor

pytestmark = pytest.mark.integration


def _postgres(settings) -> PostgresResource:
    db = settings.database
    return PostgresResource(
        host=db.host, port=db.port, dbname=db.name, user=db.user, password=db.password
    )


def test_sensor_skips_when_every_migration_is_applied(stack):
    with psycopg.connect(stack.database.dsn(), autocommit=True) as conn:
        apply_migrations(conn, stack)
        assert pending_migrations(conn) == []
    sensor = build_schema_sensor(dg.define_asset_job("schema", selection=["database_schema"]))
    with dg.build_sensor_context(resources={"postgres": _postgres(stack)}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SkipReason)


def test_a_database_without_migrations_has_every_file_pending(stack):
    schema = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path TO {schema}")
            expected = [f"{m.version:04d}_{m.name}" for m in list_migrations()]
            assert pending_migrations(conn) == expected
            conn.execute("CREATE TABLE schema_migrations (version int primary key)")
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s)", (list_migrations()[0].version,)
            )
            assert pending_migrations(conn) == expected[1:]
        finally:
            conn.execute("RESET search_path")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
