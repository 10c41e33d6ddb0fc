"""`database.timescaledb: off` on any server (one with TimescaleDB too): native partitions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from openpipe.storage import migrations
from openpipe.storage.schema import apply_migrations
from sql_viewer.main import create_app

pytestmark = pytest.mark.integration


def test_off_never_creates_the_extension_and_makes_native_partitions(native_db, connect_to):
    with connect_to(native_db) as conn:
        report = apply_migrations(conn, native_db)
        extension = conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()[0]
        partitioned = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
            )
        }
    assert report.storage == migrations.NATIVE
    assert report.timescaledb_version is None
    assert report.compression == {}
    assert extension == 0
    assert partitioned == set(report.time_partitioned)


def test_viewer_says_native_partitions_with_planner_estimates(native_db, connect_to):
    with connect_to(native_db) as conn:
        apply_migrations(conn, native_db)
    with TestClient(create_app(native_db)) as client:
        listing = client.get("/api/tables").json()
        detail = client.get("/api/tables/wearable_readings").json()
    assert listing["storage"]["label"] == "native partitions"
    assert "no compression" in listing["storage"]["note"]
    assert detail["kind"] == "partitioned table"
    assert detail["partitioning"]["type"] == "partitioned"
