"""`openpipe kafka tail` and `openpipe kafka topics` against the stack's Kafka."""

from __future__ import annotations

import io
import time
import uuid

import orjson
import pytest

from openpipe import kafka
from openpipe.stack import kafka_shell, services

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(stack):
    name = f"itest-tail-{uuid.uuid4().hex[:8]}"
    admin = kafka.admin_client(stack.kafka.bootstrap_servers)
    kafka.ensure_topics(admin, [name], partitions=2, replication_factor=1)
    producer = kafka.make_producer(stack.kafka.bootstrap_servers, stack.kafka)
    base = int(time.time() * 1000) - 10_000
    for n in range(6):
        producer.produce(
            name,
            key=f"dev-{n}",
            value=orjson.dumps({"n": n, "heart_rate_bpm": 60.5 + n}),
            headers=[("openpipe-fault", b"late")] if n == 4 else None,
            timestamp=base + n * 1000,
        )
    assert producer.flush(10) == 0
    yield name
    admin.delete_topics([name])


def _numbers(text: str) -> list[int]:
    return [int(line.split(":")[1].strip(" ,")) for line in text.splitlines() if '"n"' in line]


def test_tail_prints_the_last_messages_in_time_order_with_key_headers_and_json(stack, topic):
    out = io.StringIO()
    assert kafka_shell.tail(stack, topic, max_messages=3, out=out) == 3
    text = out.getvalue()
    assert _numbers(text) == [3, 4, 5]
    assert "key=dev-4  headers: openpipe-fault=late" in text
    assert '  "heart_rate_bpm": 65.5' in text


def test_tail_from_beginning_starts_at_the_oldest(stack, topic):
    out = io.StringIO()
    assert kafka_shell.tail(stack, topic, from_beginning=True, out=out) == 6
    assert sorted(_numbers(out.getvalue())) == list(range(6))


def test_topics_lists_watermarks_and_the_lag_of_sinks(stack, topic):
    out = io.StringIO()
    kafka_shell.topics(stack, out=out)
    text = out.getvalue()
    block = text.split(f"{topic}  (not in config)\n", 1)[1].split("\n", 1)[0]
    assert block.startswith("  high watermarks: p0=") and "(6 messages kept)" in block
    assert stack.kafka.topics.wearables in text


def test_status_reports_each_service_as_deployed_deploying_or_down(stack):
    for state, detail in (services.flink_job(stack), services.simulator(stack, None)):
        assert state in (services.DEPLOYED, services.DEPLOYING, services.DOWN), detail
