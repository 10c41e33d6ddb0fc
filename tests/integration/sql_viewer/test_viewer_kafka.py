"""The Kafka view against the real broker: topics, watermarks, latest messages, headers."""

from __future__ import annotations

import os
import time

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

MESSAGES = 30
BASE_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
#: The messages are stamped long before the broker's retention (7 days): without this, its
#: retention check (every 5 min) may delete them while the test reads.
KEEP_OLD = {"retention.ms": "-1"}


@pytest.fixture(scope="module")
def topic(settings):
    name = f"viewer-test-{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, num_partitions=3, config=KEEP_OLD)]).values():
        future.result(timeout=30)
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True}
    )
    for i in range(MESSAGES):
        value = b'{"broken": ' if i == MESSAGES - 1 else orjson.dumps({"seq": i, "bpm": 60.5})
        producer.produce(
            name,
            key=f"wearable-{i % 5:04d}".encode(),
            value=value,
            partition=i % 3,
            timestamp=BASE_MS + i * 1000,
            headers=[("openpipe-fault", b"malformed_json")] if i == MESSAGES - 1 else None,
        )
    assert producer.flush(30) == 0
    yield name
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)


def test_topics_show_partitions_and_high_watermarks(client, topic):
    deadline = time.monotonic() + 15
    while True:
        body = client.get("/api/kafka/topics").json()
        summary = next((t for t in body["topics"] if t["name"] == topic), None)
        if summary or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert summary is not None, body
    assert [p["partition"] for p in summary["partitions"]] == [0, 1, 2]
    assert [p["high"] for p in summary["partitions"]] == [10, 10, 10]
    assert summary["messages"] == MESSAGES and summary["configured"] is False
    assert not any(t["name"].startswith("__") for t in body["topics"])
    assert isinstance(body["sink_offsets_available"], bool)


def test_latest_messages_are_newest_first_decoded_with_headers(client, topic):
    body = client.get(f"/api/kafka/topics/{topic}/messages", params={"limit": 10}).json()
    messages = body["messages"]
    assert len(messages) == 10
    newest = messages[0]
    assert newest["timestamp"] == "2024-05-01T00:00:29.000+00:00"
    assert newest["headers"] == [{"key": "openpipe-fault", "value": "malformed_json"}]
    assert newest["value"] == {
        "size": 11,
        "truncated": False,
        "format": "text",
        "value": '{"broken": ',
    }
    assert [m["value"]["value"]["seq"] for m in messages[1:]] == list(range(28, 19, -1))
    assert messages[1]["key"] == "wearable-0003" and messages[1]["headers"] == []


def test_message_limit_is_capped_by_config(client, topic, settings):
    body = client.get(f"/api/kafka/topics/{topic}/messages", params={"limit": 100000}).json()
    assert body["limit"] == settings.viewer.kafka_message_limit
    assert len(body["messages"]) == MESSAGES


def test_unknown_topic_is_404(client):
    response = client.get("/api/kafka/topics/no-such-topic-viewer/messages")
    assert response.status_code == 404
    assert "GET /api/kafka/topics lists them" in response.json()["error"]
    names = [t["name"] for t in client.get("/api/kafka/topics").json()["topics"]]
    assert "no-such-topic-viewer" not in names  # looking must not auto-create it
