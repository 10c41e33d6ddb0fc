"""`openpipe up` applies pending migrations as a `database_schema` materialization in Dagster."""

from __future__ import annotations

import pytest

from openpipe.stack import cli
from openpipe.stack import dagster as dagster_stack
from openpipe.storage.schema import pending_migrations

pytestmark = pytest.mark.integration


def test_up_materializes_database_schema_so_every_table_exists_when_it_returns(
    tsdb, connect_to, tmp_path, monkeypatch, capsys
):
    # An instance of its own: home in tmp, run/event storage in the scratch database.
    settings = tsdb.model_copy(
        update={"database": tsdb.database.model_copy(update={"dagster_name": tsdb.database.name})}
    )
    monkeypatch.setattr(dagster_stack, "DAGSTER_HOME", tmp_path / "dagster")
    monkeypatch.setenv("OPENPIPE__DATABASE__NAME", tsdb.database.name)
    with connect_to(settings) as conn:
        assert pending_migrations(conn)
    cli._migrate(settings, cli.Progress())
    with connect_to(settings) as conn:
        assert pending_migrations(conn) == []
        tables = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        ).fetchone()[0]
        recorded = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key LIKE '%database_schema%'"
        ).fetchone()[0]
    assert tables >= 10
    assert recorded == 1
    out = capsys.readouterr().out
    assert "materializing database_schema" in out
    assert "schema migrated (TimescaleDB " in out
