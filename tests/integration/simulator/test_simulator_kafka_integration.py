"""The simulator against the stack's Kafka: keys, headers, timestamps, counts, dashboard."""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from openpipe.config import Settings, parse_settings
from openpipe.events import FAMILIES, FAULT_HEADER, EventValidator, parse_event_time
from simulator.engine import Simulation
from simulator.publisher import KafkaPublisher
from simulator.runner import RunPlan, run_simulation
from simulator.stats import SimulatorStats

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
START_MS = 1_767_254_400_000  # 2026-01-01T08:00:00Z
#: The messages are stamped long before the broker's retention (7 days): without this, its
#: retention check (every 5 min) may delete them while the test reads.
KEEP_OLD = {"retention.ms": "-1"}


@pytest.fixture
def topics(stack: Settings):
    """Throwaway raw topics on the stack's broker, so counts are exact and the pipeline clean."""
    suffix = uuid.uuid4().hex[:8]
    names = {f: f"simtest-{f}-{suffix}" for f in FAMILIES}
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    new = [
        NewTopic(t, stack.kafka.partitions, stack.kafka.replication_factor, config=KEEP_OLD)
        for t in names.values()
    ]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)
    yield names
    for future in admin.delete_topics(list(names.values())).values():
        future.result(timeout=30)


def consume_all(settings: Settings, topics: list[str], expected: int, timeout_s: float = 60):
    """Every message of `topics` from the beginning (stops when `expected` are read)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"simtest-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is None:
                    out.append(message)
        # read a little longer: more than expected would be a bug too
        out += [m for m in consumer.consume(10_000, timeout=2.0) if m.error() is None]
    finally:
        consumer.close()
    return out


def test_virtual_run_delivers_every_message_with_keys_headers_and_virtual_time(
    stack: Settings, topics: dict[str, str]
) -> None:
    raw = stack.model_dump()
    raw["kafka"]["topics"].update(topics)
    settings = parse_settings(raw, environ={})
    stats = SimulatorStats()
    publisher = KafkaPublisher(settings, stats)
    assert publisher.wait_until_ready(threading.Event())
    plan = RunPlan(START_MS, START_MS + 300_000, virtual=True)
    undelivered = run_simulation(
        Simulation(settings, 4, START_MS), publisher, stats, plan, threading.Event()
    )
    assert undelivered == 0 and sum(stats.failed.values()) == 0
    assert stats.delivered == stats.produced

    messages = consume_all(settings, list(topics.values()), sum(stats.produced.values()))
    family_of = {t: f for f, t in topics.items()}
    read = Counter(family_of[m.topic()] for m in messages)
    assert read == stats.produced, (read, stats.produced)

    validator = EventValidator(settings)
    faults = Counter()
    for m in messages:
        headers = dict(m.headers() or [])
        kind = headers[FAULT_HEADER].decode() if FAULT_HEADER in headers else None
        faults[kind] += 1
        verdict = validator.validate(family_of[m.topic()], m.value(), m.timestamp()[1])
        assert verdict.ok == (kind in (None, "duplicate", "late")), (kind, verdict)
        if kind is None:
            event = verdict.event
            assert m.key().decode() == event["device_id"]
            # virtual clock: the message timestamp is the event's (virtual) time
            assert m.timestamp()[1] == int(parse_event_time(event["event_time"]).timestamp() * 1000)
            assert START_MS <= m.timestamp()[1] < START_MS + 300_000
    assert faults[None] > 10_000 and len(faults) == 10, faults
    assert sum(n for (_f, _k), n in stats.faults.items()) == sum(faults.values()) - faults[None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_time_process_dashboard_control_metrics_and_clean_shutdown(
    stack: Settings, topics: dict[str, str]
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        **{f"OPENPIPE__KAFKA__TOPICS__{f.upper()}": t for f, t in topics.items()},
        "OPENPIPE__MONITORING__SIMULATOR_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--seed", "5", "--rate-multiplier", "4"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("simulator never became ready")
        assert httpx.get(f"{url}/health/live").json() == {"status": "live"}
        assert "<canvas" in httpx.get(url).text

        changed = httpx.put(f"{url}/api/families/gps", json={"count": 120, "rate_multiplier": 2})
        assert changed.status_code == 200 and changed.json()["devices"] == 120
        time.sleep(4)
        stats = httpx.get(f"{url}/api/stats").json()
        assert stats["families"]["gps"]["devices"] == 120
        assert stats["families"]["wearables"]["delivered"] > 0
        assert stats["rates"]["wearables"] > 0
        metrics = httpx.get(f"{url}/metrics").text
        delivered = re.search(r'openpipe_simulator_delivered_total\{family="gps"\} (\S+)', metrics)
        assert delivered and float(delivered.group(1)) > 0
        assert "openpipe_simulator_produce_latency_seconds_count" in metrics
        assert "openpipe_simulator_kafka_ready 1.0" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output[-2000:]
    summary = re.search(r"stopped: produced (\{.*?\}), delivered (\{.*?\}), failed", output)
    assert summary, output[-2000:]
    produced = ast.literal_eval(summary.group(1))
    delivered = ast.literal_eval(summary.group(2))
    assert produced == delivered
    messages = consume_all(stack, list(topics.values()), sum(produced.values()))
    family_of = {t: f for f, t in topics.items()}
    assert Counter(family_of[m.topic()] for m in messages) == Counter(delivered)
    # Restaurants follow Indian meal times: at night in IST a few seconds may bring no order.
    key_prefix = {"wearables": "wear", "restaurants": "pos-", "gps": "gps-"}
    sent = {key_prefix[family] for family, count in delivered.items() if count}
    assert {"wear", "gps-"} <= sent
    assert {m.key().decode()[:4] for m in messages} == sent
