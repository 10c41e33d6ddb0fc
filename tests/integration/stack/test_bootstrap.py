"""sql/bootstrap/roles_and_databases.sql creates the TimescaleDB extension only when it should."""

from __future__ import annotations

import uuid

import pytest

from openpipe.stack import postgres

pytestmark = pytest.mark.integration


def _bootstrapped(stack, mode: str):
    if not stack.database.manage_local:
        pytest.skip("needs the local cluster's superuser")
    name = f"openpipe_itest_boot_{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(
        update={"database": stack.database.model_copy(update={"name": name, "timescaledb": mode})}
    )
    postgres.bootstrap(settings)
    try:
        with postgres.superuser_connect(settings, name) as conn:
            installed = conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()[0]
            preloaded = postgres.preloads_timescaledb(conn)
    finally:
        with postgres.superuser_connect(settings) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return bool(installed), preloaded


def test_off_never_creates_the_extension(stack):
    installed, _ = _bootstrapped(stack, "off")
    assert not installed


def test_auto_creates_it_exactly_when_the_server_preloads_it(stack):
    installed, preloaded = _bootstrapped(stack, "auto")
    assert installed == preloaded
