"""Allowed queries, error positions, row cap, timeout, CSV and the table catalogue."""

from __future__ import annotations

import csv
import io
import time

import psycopg
import pytest
from fastapi.testclient import TestClient
from viewer_support import viewer_settings

from sql_viewer.main import create_app

pytestmark = pytest.mark.integration

HUGE_CROSS_JOIN = (
    "SELECT a.i, b.j FROM generate_series(1, 1000000) a(i)"
    " CROSS JOIN generate_series(1, 1000000) b(j)"
)


def run(client: TestClient, text: str, limit: int | None = None):
    return client.post("/api/query", json={"sql": text, "limit": limit})


def test_join_cte_and_window_function_with_created_at_and_updated_by(client, fixture_tables):
    response = run(
        client,
        f"""
        WITH per_device AS (
            SELECT r.device_id, d.patient_id, d.created_at, d.updated_by,
                   avg(r.heart_rate_bpm) AS avg_hr, count(*) AS n
            FROM {fixture_tables.readings} r
            JOIN {fixture_tables.devices} d USING (device_id)
            GROUP BY 1, 2, 3, 4
        )
        SELECT device_id, patient_id, created_at, updated_by, n,
               rank() OVER (PARTITION BY patient_id ORDER BY avg_hr DESC) AS rank_in_patient
        FROM per_device ORDER BY device_id;  -- trailing comment; with a semicolon
        """,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"columns", "rows", "row_count", "truncated", "elapsed_ms"}
    assert body["columns"] == [
        "device_id",
        "patient_id",
        "created_at",
        "updated_by",
        "n",
        "rank_in_patient",
    ]
    assert body["column_types"][2] == "timestamptz"
    assert body["row_count"] == 10 and body["truncated"] is False
    assert sum(row[4] for row in body["rows"]) == 500
    assert {row[3] for row in body["rows"]} == {"seed"}
    assert body["elapsed_ms"] > 0


@pytest.mark.parametrize(
    "text",
    [
        "SELECT created_at, updated_by FROM {devices} WHERE updated_by LIKE 's%'",
        "SELECT 'DELETE FROM x; DROP TABLE y' AS note, $$ ; $$ AS dollar",
        "TABLE {devices}",
        "VALUES (1, 'a'), (2, 'b')",
        "(SELECT 1 AS x) UNION ALL (SELECT 2)",
        "/* leading; comment */ SELECT count(*) FROM {readings}",
        "EXPLAIN SELECT * FROM {readings} WHERE id = 1",
        "SELECT value, heart_rate_bpm, event_time::date, '{{\"a\": 1}}'::jsonb AS doc"
        " FROM {readings} LIMIT 3",
    ],
)
def test_other_read_queries_work(client, fixture_tables, text):
    sql_text = text.format(readings=fixture_tables.readings, devices=fixture_tables.devices)
    response = run(client, sql_text)
    assert response.status_code == 200, response.text
    assert response.json()["row_count"] >= 1


def test_values_python_cannot_hold_are_shown_as_postgres_text(client):
    body = run(
        client,
        "SELECT 'infinity'::timestamptz AS t, '-infinity'::date AS d,"
        " '0044-03-15 BC'::timestamp AS ides, interval '1 year 2 mons' AS i,"
        " ARRAY[1, 2] AS a, 'NaN'::numeric AS n",
    ).json()
    assert body["rows"] == [
        ["infinity", "-infinity", "0044-03-15 00:00:00 BC", "1 year 2 mons", [1, 2], "NaN"]
    ]
    assert body["column_types"] == [
        "timestamptz",
        "date",
        "timestamp",
        "interval",
        "int4[]",
        "numeric",
    ]


def test_user_defined_types_are_named_and_shown_as_text(client, fixture_tables):
    body = run(client, f"SELECT 'high'::{fixture_tables.schema}.severity AS severity").json()
    assert body["rows"] == [["high"]]
    assert body["column_types"] == [f"{fixture_tables.schema}.severity"]


def test_sql_error_is_400_with_message_and_position(client, fixture_tables):
    text = f"-- first line\nSELECT device_id, no_such_column FROM {fixture_tables.readings}"
    response = run(client, text)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == 'column "no_such_column" does not exist'
    assert body["sqlstate"] == "42703"
    assert text[body["position"] - 1 :].startswith("no_such_column")
    syntax = run(client, "SELECT 1 +").json()
    assert syntax["error"] == "syntax error at end of input" and syntax["position"] == 11


def test_row_cap_cuts_a_huge_cross_join(client, settings):
    started = time.monotonic()
    body = run(client, HUGE_CROSS_JOIN).json()
    assert body["row_count"] == settings.viewer.row_cap
    assert len(body["rows"]) == settings.viewer.row_cap
    assert body["truncated"] is True
    assert time.monotonic() - started < settings.viewer.statement_timeout_ms / 1000
    small = run(client, HUGE_CROSS_JOIN, limit=7).json()
    assert small["row_count"] == 7 and small["truncated"] is True
    above_cap = run(client, HUGE_CROSS_JOIN, limit=settings.viewer.row_cap * 10).json()
    assert above_cap["row_count"] == settings.viewer.row_cap
    exact = run(client, "SELECT * FROM generate_series(1, 7)", limit=7).json()
    assert exact["row_count"] == 7 and exact["truncated"] is False


def test_pg_sleep_is_cancelled_near_the_statement_timeout(client, settings):
    limit_s = settings.viewer.statement_timeout_ms / 1000
    started = time.monotonic()
    response = run(client, f"SELECT pg_sleep({limit_s * 6})")
    took = time.monotonic() - started
    assert response.status_code == 400
    body = response.json()
    assert body["kind"] == "timeout"
    assert (
        "statement_timeout" in body["error"]
        and str(settings.viewer.statement_timeout_ms) in body["error"]
    )
    assert limit_s * 0.95 <= took < limit_s + 1.5


def test_csv_download_has_header_rows_and_truncation_flag(client, fixture_tables, settings):
    response = client.get(
        "/api/query.csv",
        params={
            "sql": f"SELECT id, device_id, updated_by FROM {fixture_tables.readings} ORDER BY id"
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["id", "device_id", "updated_by"] and len(rows) == 501
    assert rows[1] == ["1", "w-2", "sink"]
    assert response.headers["x-openpipe-truncated"] == "false"
    capped = client.get("/api/query.csv", params={"sql": HUGE_CROSS_JOIN})
    assert capped.headers["x-openpipe-truncated"] == "true"
    assert capped.text.count("\r\n") == settings.viewer.row_cap + 1


def test_tables_lists_readable_tables_with_columns(client, fixture_tables):
    tables = {t["name"]: t for t in client.get("/api/tables").json()["tables"]}
    readings = tables[fixture_tables.readings]
    assert readings["kind"] == "table"
    assert readings["estimated_rows"] == 500
    columns = {c["name"]: c["type"] for c in readings["columns"]}
    assert columns["event_time"] == "timestamp with time zone"
    assert columns["value"] == "numeric(8,2)"
    assert not any(name.startswith(("pg_catalog.", "information_schema.")) for name in tables)


def test_table_detail_shows_latest_rows_by_time(client, fixture_tables, settings):
    body = client.get(f"/api/tables/{fixture_tables.readings}").json()
    assert body["order_column"] == "event_time"
    latest = body["latest_rows"]
    assert latest["row_count"] == settings.viewer.latest_rows
    times = [row[latest["columns"].index("event_time")] for row in latest["rows"]]
    assert times == sorted(times, reverse=True)
    assert latest["rows"][0][latest["columns"].index("id")] == 500


@pytest.mark.parametrize(
    "name",
    ["no_such_table", 'readings"; DROP TABLE x; --', "pg_catalog.pg_authid", "pg_shadow"],
)
def test_unknown_or_hostile_table_names_are_404(client, name):
    response = client.get(f"/api/tables/{name}")
    assert response.status_code == 404
    assert "GET /api/tables lists them" in response.json()["error"]


def test_readiness_checks_database_and_kafka(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "kafka": "ok"}
    assert client.get("/health").status_code == 200


def test_token_is_required_on_api_routes_when_set(fixture_tables):
    token = "integration-secret-token"
    with TestClient(create_app(viewer_settings(), token=token)) as client:
        assert client.post("/api/query", json={"sql": "SELECT 1"}).status_code == 401
        assert client.get("/api/tables").status_code == 401
        assert client.get("/api/kafka/topics").status_code == 401
        wrong = {"Authorization": "Bearer integration-secret-tokeX"}
        assert client.get("/api/tables", headers=wrong).status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/query", json={"sql": "SELECT 1"}, headers=good).json()["rows"] == [
            [1]
        ]
        assert client.get("/api/tables", headers=good).status_code == 200
        assert client.get("/health/live").status_code == 200


def test_errors_never_reveal_the_dsn_or_password(settings):
    # A role that does not exist fails even where pg_hba.conf trusts 127.0.0.1.
    secret = "not-the-reader-password-3141"
    bad = viewer_settings(statement_timeout_ms=1000)
    database = bad.database.model_copy(
        update={"reader_user": "viewer_no_such_role", "reader_password": secret}
    )
    bad = bad.model_copy(update={"database": database})
    with TestClient(create_app(bad, token="")) as client:
        responses = [
            client.get("/health/ready"),
            client.post("/api/query", json={"sql": "SELECT 1"}),
            client.get("/api/tables"),
        ]
    for response in responses:
        assert response.status_code == 503
        text = response.text
        assert secret not in text and "password" not in text.lower()
        assert "viewer_no_such_role" not in text
        assert f"port={settings.database.port}" not in text and "Traceback" not in text


def test_a_locked_table_does_not_hide_the_catalogue(client, fixture_tables, settings):
    # Another session holds a table the way DDL does (a migration, a partition being
    # created): exact sizes would wait on it, so the list falls back to estimates.
    with psycopg.connect(settings.database.dsn(), connect_timeout=5) as holder:
        holder.execute(f"LOCK TABLE {fixture_tables.devices} IN ACCESS EXCLUSIVE MODE")
        response = client.get("/api/tables")
        assert response.status_code == 200, response.text
        body = response.json()
        tables = {t["name"]: t for t in body["tables"]}
        readings = tables[fixture_tables.readings]
        assert readings["size_estimated"] is True
        assert readings["estimated_rows"] == 500
        assert readings["size_bytes"] > 0  # its pages as of the fixture's ANALYZE
        assert tables[fixture_tables.devices]["size_estimated"] is True
        assert "a relation was locked" in body["storage"]["note"]

        # The detail of a table that is not locked still shows its rows...
        detail = client.get(f"/api/tables/{fixture_tables.readings}")
        assert detail.status_code == 200, detail.text
        assert detail.json()["latest_rows"]["row_count"] == settings.viewer.latest_rows
        # ...and the locked one says what it waited for.
        locked = client.get(f"/api/tables/{fixture_tables.devices}")
        assert locked.status_code == 400
        assert "lock_timeout" in locked.json()["error"]

    # Exact again once the lock is gone (waiting out any lock the live stack holds a moment).
    deadline = time.monotonic() + 15
    while True:
        after = {t["name"]: t for t in client.get("/api/tables").json()["tables"]}
        if not after[fixture_tables.readings]["size_estimated"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert after[fixture_tables.readings]["size_estimated"] is False
