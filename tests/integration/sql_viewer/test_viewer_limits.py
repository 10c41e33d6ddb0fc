"""Byte budget per response, cut cells and the bound on queries in flight (issue 16.5)."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from viewer_support import viewer_settings

from sql_viewer.main import create_app

pytestmark = pytest.mark.integration

FIFTEEN_20MB_CELLS = "select repeat('x', 20000000) from generate_series(1, 15)"


def test_fifteen_20mb_cells_are_cut_and_the_response_stays_small(client, settings):
    limits = settings.viewer
    response = client.post("/api/query", json={"sql": FIFTEEN_20MB_CELLS})
    assert response.status_code == 200, response.text[:300]
    assert len(response.content) <= min(limits.max_result_bytes, 16 * limits.max_cell_bytes)
    body = response.json()
    assert body["row_count"] == 15 and body["cells_cut"] == 15
    assert body["truncated"] is True and body["truncated_reason"] == "max_cell_bytes"
    (cell,) = body["rows"][0]
    assert cell.startswith("x" * limits.max_cell_bytes)
    assert "[cut: 20000000 bytes of text" in cell and "viewer.max_cell_bytes" in cell


def test_rows_past_the_byte_budget_are_left_out_in_json_and_csv(fixture_tables):
    budget = 262_144  # four 64 KiB cells
    app = create_app(viewer_settings(max_result_bytes=budget, max_cell_bytes=65536), token="")
    with TestClient(app) as viewer:
        response = viewer.post("/api/query", json={"sql": FIFTEEN_20MB_CELLS})
        csv = viewer.get("/api/query.csv", params={"sql": FIFTEEN_20MB_CELLS})
    assert len(response.content) <= budget + 1024
    body = response.json()
    assert body["truncated"] is True and body["truncated_reason"] == "max_result_bytes"
    assert 1 <= body["row_count"] < 15 and body["cells_cut"] == body["row_count"]
    assert csv.status_code == 200 and len(csv.content) <= budget + 1024
    assert csv.headers["x-openpipe-truncated"] == "true"
    assert csv.headers["x-openpipe-truncated-reason"] == "max_result_bytes"


def test_cells_cut_without_rows_dropped_say_so(client, settings):
    text = f"select repeat('y', {settings.viewer.max_cell_bytes + 1}) from generate_series(1, 2)"
    body = client.post("/api/query", json={"sql": text}).json()
    assert body["row_count"] == 2 and body["cells_cut"] == 2
    assert body["truncated"] is True and body["truncated_reason"] == "max_cell_bytes"


def test_an_empty_result_still_names_its_columns(client):
    body = client.post("/api/query", json={"sql": "select 1 as a, 'b'::text as b where false"})
    assert body.json()["columns"] == ["a", "b"] and body.json()["rows"] == []
    assert body.json()["truncated"] is False and body.json()["truncated_reason"] is None


def test_a_query_over_the_in_flight_limit_gets_429_with_a_message(fixture_tables):
    app = create_app(viewer_settings(max_queries_in_flight=2), token="")
    with TestClient(app) as viewer:
        answers: list = []
        started = threading.Barrier(3)

        def ask() -> None:
            started.wait()
            answers.append(viewer.post("/api/query", json={"sql": "select pg_sleep(1.5)"}))

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 429], [a.text for a in answers]
        (busy,) = [a for a in answers if a.status_code == 429]
        assert busy.json()["kind"] == "busy" and busy.headers["retry-after"] == "1"
        assert "viewer.max_queries_in_flight" in busy.json()["error"]
        assert viewer.post("/api/query", json={"sql": "select 1"}).status_code == 200
