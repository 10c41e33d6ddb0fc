"""Dashboard app: control API, health semantics and metrics, against an in-process simulation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from openpipe.config import load_settings
from simulator.dashboard import create_app
from simulator.engine import Simulation
from simulator.runner import _emit
from simulator.stats import SimulatorStats

START_MS = 1_767_254_400_000


class CollectingPublisher:
    def __init__(self, stats: SimulatorStats) -> None:
        self.stats = stats
        self.devices: dict[str, set[str]] = {}

    def send(self, family, topic, outgoing) -> None:
        self.devices.setdefault(family, set()).update(outgoing.keys)
        self.stats.delivered[family] += len(outgoing)


@pytest.fixture
def setup():
    stats = SimulatorStats()
    sim = Simulation(load_settings(), 1, START_MS)
    with TestClient(create_app(sim, stats, needs_kafka=True)) as client:
        yield sim, stats, client


def test_ready_is_false_until_kafka_is_reachable(setup) -> None:
    _sim, stats, client = setup
    stats.kafka_error = "cannot reach 127.0.0.1:9092"
    assert client.get("/health/live").status_code == 200
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["kafka"] == "cannot reach 127.0.0.1:9092"
    stats.kafka_ready = True
    assert client.get("/health/ready").status_code == 200
    assert client.get("/health").json()["live"] is True


def test_control_api_changes_device_counts_and_rates(setup) -> None:
    sim, stats, client = setup
    response = client.put("/api/families/gps", json={"count": 80, "rate_multiplier": 2.5})
    assert response.status_code == 200
    assert response.json()["devices"] == 80 and response.json()["rate_multiplier"] == 2.5
    publisher = CollectingPublisher(stats)
    _emit(sim.advance(START_MS + 20_000), publisher, stats, sim)
    assert len(publisher.devices["gps"]) == 80
    client.put("/api/families/gps", json={"count": 10})
    publisher.devices.clear()
    _emit(sim.advance(START_MS + 40_000), publisher, stats, sim)
    assert len(publisher.devices["gps"]) == 10
    assert client.get("/api/families").json()["gps"]["devices"] == 10


def test_control_api_rejects_bad_requests(setup) -> None:
    _sim, _stats, client = setup
    assert client.put("/api/families/toasters", json={"count": 1}).status_code == 404
    assert client.put("/api/families/gps", json={"count": -1}).status_code == 422
    assert client.put("/api/families/gps", json={"rate_multiplier": 0}).status_code == 422


def test_stats_and_metrics_report_families_and_faults(setup) -> None:
    sim, stats, client = setup
    publisher = CollectingPublisher(stats)
    _emit(sim.advance(START_MS + 120_000), publisher, stats, sim)
    stats.observe_latencies([0.002, 0.02, 0.3])
    body = client.get("/api/stats").json()
    assert body["families"]["wearables"]["produced"] > 1000
    assert sum(body["families"]["wearables"]["faults"].values()) > 0
    metrics = client.get("/metrics").text
    for name in (
        'openpipe_simulator_events_total{family="wearables"}',
        "openpipe_simulator_faults_total{",
        'openpipe_simulator_delivery_failures_total{family="gps"} 0.0',
        "openpipe_simulator_produce_latency_seconds_bucket{",
        "openpipe_simulator_produce_latency_seconds_count 3.0",
        'openpipe_simulator_devices{family="restaurants"} 20.0',
    ):
        assert name in metrics, name
    assert "wear-0" not in metrics  # no per-device labels


def test_dashboard_page_is_self_contained(setup) -> None:
    _sim, _stats, client = setup
    page = client.get("/").text
    assert "<canvas" in page and "/api/stats" in page
    assert "http://" not in page and "https://" not in page  # offline machine: no CDN
