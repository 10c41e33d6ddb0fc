"""App wiring that needs no services: token checks, liveness, pages, error shapes."""

import pytest
from fastapi.testclient import TestClient

from openpipe.config import load_settings
from sql_viewer.main import create_app

TOKEN = "unit-test-token"


@pytest.fixture(scope="module")
def client():
    # An unreachable database and broker: these tests must not need either.
    settings = load_settings(
        environ={
            "OPENPIPE__DATABASE__PORT": "1",
            "OPENPIPE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
    )
    with TestClient(create_app(settings, token=TOKEN)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tables"),
        ("GET", "/api/tables/wearable_readings"),
        ("POST", "/api/query"),
        ("GET", "/api/query.csv?sql=select%201"),
        ("GET", "/api/kafka/topics"),
        ("GET", "/api/kafka/topics/virtual-gps/messages?limit=5"),
    ],
)
def test_api_routes_require_the_token(client, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = client.request(method, path, headers=headers, json={"sql": "select 1"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "OPENPIPE_VIEWER_TOKEN" in response.json()["error"]


def test_refused_sql_is_a_400_before_any_connection(client):
    response = client.post(
        "/api/query",
        json={"sql": "select 1; drop table t"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 400
    assert response.json()["kind"] == "refused"
    assert response.json()["position"] == 11


def test_liveness_and_pages_need_no_token_and_no_services(client):
    assert client.get("/health/live").json() == {"status": "alive"}
    for page in ("/", "/console", "/kafka"):
        response = client.get(page)
        assert response.status_code == 200
        assert '<script src="/static/common.js">' in response.text
        assert "http://" not in response.text and "https://" not in response.text
    assert client.get("/static/console.js").status_code == 200


def test_metrics_are_exposed(client):
    client.get("/health/live")
    body = client.get("/metrics").text
    assert (
        'openpipe_viewer_http_requests_total{method="GET",route="/health/live",status="200"}'
        in body
    )
