"""Destructive and escape attempts fail, and nothing they aim at changes.

The app here has a single pooled connection, so every attempt and the checks after
it run in the same database session: a setting that leaked out of one request
would be seen by the next.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from viewer_support import Fixture, viewer_settings

from openpipe.config import Settings
from sql_viewer.main import create_app

pytestmark = pytest.mark.integration

TIMEOUT_MS = 2000
PWNED = Path("/tmp/openpipe-viewer-escape-marker")

ESCAPES = [
    # multi-statement text and transaction control
    "SELECT 1; DELETE FROM {readings}",
    "COMMIT; DELETE FROM {readings}",
    "ROLLBACK; UPDATE {readings} SET value = 0",
    "END; INSERT INTO {devices} (device_id, patient_id) VALUES ('evil', 'x')",
    "TABLE {devices}; DROP TABLE {devices}",
    "VALUES (1); TRUNCATE {readings}",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "COMMIT",
    # data-modifying CTEs
    "WITH gone AS (DELETE FROM {readings} RETURNING *) SELECT count(*) FROM gone",
    "WITH x AS (UPDATE {readings} SET value = 0 RETURNING 1) SELECT * FROM x",
    "WITH x AS (INSERT INTO {devices} (device_id, patient_id) VALUES ('e', 'e') RETURNING 1) "
    "SELECT * FROM x",
    # changing the session's role or limits
    "SET ROLE {owner}",
    "SET SESSION AUTHORIZATION {owner}",
    "SET default_transaction_read_only = off",
    "SET LOCAL statement_timeout = 0",
    "RESET ALL",
    "SELECT set_config('role', '{owner}', false)",
    "SELECT set_config('session_authorization', '{owner}', false)",
    "SELECT set_config('transaction_read_only', 'off', true), count(*) FROM {readings}",
    "ALTER ROLE {reader} SET statement_timeout = 0",
    "ALTER SYSTEM SET statement_timeout = 0",
    # files, programs, large objects, code
    f"COPY {{readings}} TO PROGRAM 'touch {PWNED}'",
    f"COPY (SELECT 1) TO '{PWNED}'",
    "COPY {readings} FROM '/etc/hostname'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('postgresql.conf')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    f"SELECT lo_export(0, '{PWNED}')",
    "DO $$ BEGIN DELETE FROM {readings}; END $$",
    "CALL pg_catalog.pg_sleep(0)",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "PREPARE p AS DELETE FROM {readings}",
    "EXECUTE p",
    "DEALLOCATE ALL",
    "LISTEN evil",
    # privileges, maintenance, objects
    "GRANT ALL ON {readings} TO PUBLIC",
    "REVOKE SELECT ON {readings} FROM {reader}",
    "VACUUM {readings}",
    "ANALYZE {readings}",
    "CREATE TEMP TABLE evil AS SELECT 1",
    "SELECT * INTO TEMP evil FROM {readings}",
    "CREATE TABLE public.viewer_evil (a int)",
    "DROP TABLE {readings}",
    "ALTER TABLE {readings} ADD COLUMN evil int",
    "TRUNCATE {readings}",
    "DELETE FROM {readings}",
    "UPDATE {readings} SET value = 0",
    "INSERT INTO {devices} (device_id, patient_id) VALUES ('evil', 'x')",
    "EXPLAIN ANALYZE DELETE FROM {readings}",
    # locks, sequences, other sessions, other databases
    "SELECT * FROM {readings} FOR UPDATE",
    "SELECT * FROM {devices} FOR SHARE",
    "SELECT nextval('{sequence}')",
    "SELECT setval('{sequence}', 1)",
    "SELECT pg_terminate_backend({owner_pid})",
    "SELECT pg_cancel_backend({owner_pid})",
    "SELECT * FROM {dagster}.public.runs",
    # comment and quoting tricks
    "SELECT 1 /* ; */ ; DELETE FROM {readings}",
    "SELECT 1 -- harmless\n; DELETE FROM {readings}",
    "SELECT 'it''s'; DELETE FROM {readings}",
    "SELECT $$ ; $$; DELETE FROM {readings}",
    "SELECT $a$ $$ $a$; DELETE FROM {readings}",
    "SELECT E'\\\\'; DELETE FROM {readings} -- '",
    'SELECT 1 AS "x;"; DELETE FROM {readings}',
    "/* SELECT */ DELETE FROM {readings}",
    "-- SELECT\nDELETE FROM {readings}",
    "SELECT 1 \\; DELETE FROM {readings}",
    # closing the viewer's own wrapper to smuggle in a second statement
    "SELECT 1) AS q; DELETE FROM {readings}; SELECT * FROM (SELECT 1",
]


def checksums(owner: psycopg.Connection, fx: Fixture, settings: Settings) -> dict[str, object]:
    """What an escape could change: test data, the sequence, the reader's powers, ACLs."""
    schema = sql.Identifier(fx.schema)
    reader = settings.database.reader_user
    queries = {
        "readings": sql.SQL(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {}.readings t"
        ).format(schema),
        "devices": sql.SQL(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.device_id)) FROM {}.devices t"
        ).format(schema),
        "sequence": sql.SQL("SELECT last_value, is_called FROM {}.readings_id_seq").format(schema),
        "schema objects": sql.SQL(
            "SELECT string_agg(c.relname || ':' || c.relkind::text || ':'"
            " || coalesce(c.relacl::text, ''), ',' ORDER BY c.relname) FROM pg_class c"
            " WHERE c.relnamespace = {}::regnamespace"
        ).format(sql.Literal(fx.schema)),
        "reader role": sql.SQL(
            "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls, rolconfig,"
            " (SELECT array_agg(roleid::regrole::text ORDER BY 1) FROM pg_auth_members"
            "   WHERE member = r.oid),"
            " has_database_privilege(rolname, current_database(), 'CREATE, TEMPORARY'),"
            " has_schema_privilege(rolname, 'public', 'CREATE')"
            " FROM pg_roles r WHERE rolname = {}"
        ).format(sql.Literal(reader)),
        "large objects": sql.SQL("SELECT count(*) FROM pg_largeobject_metadata"),
        "databases": sql.SQL(
            "SELECT string_agg(datname || coalesce(datacl::text, ''), ',' ORDER BY datname)"
            " FROM pg_database WHERE datname IN ({}, {})"
        ).format(sql.Literal(settings.database.name), sql.Literal(settings.database.dagster_name)),
    }
    result: dict[str, object] = {
        name: owner.execute(query).fetchone() for name, query in queries.items()
    }
    # Other components create and drop tables meanwhile: compare the ones in both snapshots.
    result["public acls"] = dict(
        owner.execute(
            "SELECT c.oid::int, coalesce(c.relacl::text, '') || ' ' || c.relowner::regrole::text"
            " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'p', 'v', 'm')"
        ).fetchall()
    )
    return result


def assert_unchanged(before: dict[str, object], after: dict[str, object]) -> None:
    """Everything equal; public ACLs compared for the tables present both times."""
    acls_before, acls_after = before.pop("public acls"), after.pop("public acls")
    common = acls_before.keys() & acls_after.keys()
    assert {k: acls_after[k] for k in common} == {k: acls_before[k] for k in common}
    assert after == before


@pytest.fixture(scope="module")
def one_session(fixture_tables: Fixture):
    app = create_app(viewer_settings(pool_size=1, statement_timeout_ms=TIMEOUT_MS), token="")
    with TestClient(app) as client:
        yield client


def test_escape_attempts_all_fail_and_change_nothing(one_session, owner, fixture_tables, settings):
    PWNED.unlink(missing_ok=True)
    names = {
        "readings": fixture_tables.readings,
        "devices": fixture_tables.devices,
        "sequence": fixture_tables.sequence,
        "owner": settings.database.user,
        "reader": settings.database.reader_user,
        "owner_pid": fixture_tables.owner_pid,
        "dagster": settings.database.dagster_name,
    }
    attempts = [template.format(**names) for template in ESCAPES]
    assert len(attempts) >= 30
    before = checksums(owner, fixture_tables, settings)

    succeeded = []
    for text in attempts:
        response = one_session.post("/api/query", json={"sql": text})
        body = response.json()
        if response.status_code != 400 or "error" not in body:
            succeeded.append((text, response.status_code, body))
        assert "Traceback" not in response.text and "password" not in response.text.lower()
    assert succeeded == []

    assert_unchanged(before, checksums(owner, fixture_tables, settings))
    assert not PWNED.exists()
    assert owner.execute("SELECT 1").fetchone() == (1,)  # the owner's session survived


def test_csv_endpoint_refuses_the_same_way(one_session, fixture_tables):
    response = one_session.get(
        "/api/query.csv", params={"sql": f"SELECT 1; DELETE FROM {fixture_tables.readings}"}
    )
    assert response.status_code == 400
    assert "one statement per request" in response.json()["error"]


def test_set_config_cannot_loosen_the_timeout_of_its_own_statement(one_session):
    started = time.monotonic()
    response = one_session.post(
        "/api/query",
        json={"sql": "SELECT set_config('statement_timeout', '0', false), pg_sleep(30)"},
    )
    assert response.status_code == 400
    assert response.json()["kind"] == "timeout"
    assert time.monotonic() - started < TIMEOUT_MS / 1000 + 1.5


def test_set_config_has_no_effect_on_later_queries(one_session):
    loosen = (
        "SELECT set_config('statement_timeout', '0', false),"
        " set_config('lock_timeout', '0', false),"
        " set_config('idle_in_transaction_session_timeout', '0', false),"
        " set_config('default_transaction_read_only', 'off', false),"
        " set_config('search_path', 'pg_temp, public', false),"
        " pg_advisory_lock(4242)"
    )
    assert one_session.post("/api/query", json={"sql": loosen}).status_code == 200

    probe = one_session.post(
        "/api/query",
        json={
            "sql": "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('transaction_read_only'),"
            " current_setting('default_transaction_read_only'), current_setting('search_path'),"
            " current_user, (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            "   AND pid = pg_backend_pid())"
        },
    ).json()
    assert probe["rows"] == [["2s", "1s", "on", "on", '"$user", public', "openpipe_reader", 0]]

    started = time.monotonic()
    slow = one_session.post("/api/query", json={"sql": "SELECT pg_sleep(30)"})
    assert slow.json()["kind"] == "timeout"
    assert time.monotonic() - started < TIMEOUT_MS / 1000 + 1.5


def test_the_viewer_recovers_after_terminating_its_own_session(one_session):
    response = one_session.post(
        "/api/query", json={"sql": "SELECT pg_terminate_backend(pg_backend_pid())"}
    )
    assert response.status_code in (400, 503)
    assert "Traceback" not in response.text
    assert one_session.post("/api/query", json={"sql": "SELECT 1 AS ok"}).json()["rows"] == [[1]]


def test_writes_postgres_allows_read_only_are_rolled_back(one_session, owner):
    # lo_creat() is not refused by a READ ONLY transaction; the viewer's rollback undoes it.
    count = "SELECT count(*) FROM pg_largeobject_metadata"
    before = owner.execute(count).fetchone()
    response = one_session.post("/api/query", json={"sql": "SELECT lo_creat(-1)"})
    assert response.status_code == 200
    assert owner.execute(count).fetchone() == before


def test_escapes_fail_on_the_database_layers_alone(fixture_tables, owner, settings, monkeypatch):
    """With the tokenizer switched off, the cursor, READ ONLY transaction and role still hold."""
    import sql_viewer.runner as runner_module
    from sql_viewer.guard import Statement

    monkeypatch.setattr(
        runner_module, "check_read_statement", lambda text: Statement(text, 0, "SELECT")
    )
    PWNED.unlink(missing_ok=True)
    names = {
        "readings": fixture_tables.readings,
        "devices": fixture_tables.devices,
        "sequence": fixture_tables.sequence,
        "owner": settings.database.user,
        "reader": settings.database.reader_user,
        "owner_pid": fixture_tables.owner_pid,
        "dagster": settings.database.dagster_name,
    }
    before = checksums(owner, fixture_tables, settings)
    app = create_app(viewer_settings(pool_size=1, statement_timeout_ms=TIMEOUT_MS), token="")
    with TestClient(app) as client:
        statuses = {
            template: client.post("/api/query", json={"sql": template.format(**names)}).status_code
            for template in ESCAPES
        }
        assert {t: s for t, s in statuses.items() if s != 400} == {}
        smuggled = f"SELECT 1) AS q; DELETE FROM {fixture_tables.readings}; SELECT * FROM (SELECT 1"
        multi = client.post("/api/query", json={"sql": smuggled}).json()
        assert "cannot insert multiple commands" in multi["error"]
    assert_unchanged(before, checksums(owner, fixture_tables, settings))
    assert not PWNED.exists()


def test_the_reader_role_itself_cannot_write_create_or_leave(fixture_tables, settings):
    """The stack's grants, checked with a plain autocommit session (no viewer in between)."""
    db = settings.database
    forbidden = [
        f"INSERT INTO {fixture_tables.devices} (device_id, patient_id) VALUES ('r', 'r')",
        f"UPDATE {fixture_tables.readings} SET value = 0",
        f"DELETE FROM {fixture_tables.readings}",
        f"TRUNCATE {fixture_tables.readings}",
        f"SELECT nextval('{fixture_tables.sequence}')",
        "CREATE TABLE public.viewer_reader_probe (a int)",
        "CREATE TEMP TABLE viewer_reader_probe (a int)",
        "CREATE SCHEMA viewer_reader_probe",
        f"SET ROLE {db.user}",
        "SELECT pg_read_file('/etc/hostname')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        f"ALTER TABLE {fixture_tables.readings} ADD COLUMN probe int",
        f"DROP TABLE {fixture_tables.devices}",
    ]
    with psycopg.connect(db.dsn(reader=True), autocommit=True, connect_timeout=5) as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        # Lift the role's read-only default: the privileges alone must refuse each statement.
        conn.execute("SET default_transaction_read_only = off")
        for text in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(text)
    with pytest.raises(psycopg.OperationalError, match=r"permission denied|not have CONNECT"):
        psycopg.connect(db.dsn(reader=True, database=db.dagster_name), connect_timeout=5)
