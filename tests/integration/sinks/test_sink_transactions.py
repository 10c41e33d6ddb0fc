"""Integration: the health-* sinks read committed Kafka transactions only (issue 16.8).

Flink writes the health-* topics in Kafka transactions; a failed checkpoint aborts one,
and its records stay in the log. The sinks' consumers must skip them.
"""

import time

import orjson
import pytest
from confluent_kafka import Producer

from openpipe import kafka
from openpipe.sinks import SINKS, drain_topic

pytestmark = pytest.mark.integration


def _window(day: str, device: str, minute: int, avg: float) -> bytes:
    return orjson.dumps(
        {
            "window_start": f"{day}T10:{minute:02d}:00.000Z",
            "window_end": f"{day}T10:{minute + 1:02d}:00.000Z",
            "device_id": device,
            "patient_id": "p-1",
            "metric": "heart_rate",
            "reading_count": 12,
            "avg_value": avg,
            "min_value": 60.0,
            "max_value": 140.0,
        }
    )


def test_an_aborted_transaction_never_becomes_a_row(settings, connect, make_topic, window_day):
    topic = make_topic("txn")
    device = f"itest-{topic[-8:]}"
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": f"openpipe-itest-{topic}",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, _window(window_day, device, 0, 90.0), device.encode())
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, _window(window_day, device, 1, 101.0), device.encode())
    producer.commit_transaction(30)

    deadline = time.monotonic() + 60
    while True:  # drain as the sink runs do, with the sinks' own consumer factory
        result = drain_topic(
            SINKS["health_metrics_1min"],
            settings,
            connect=connect,
            make_consumer=lambda g: kafka.make_consumer(settings.kafka.bootstrap_servers, g),
            topic=topic,
        )
        if result.total_lag == 0 or time.monotonic() > deadline:
            break
    with connect() as conn:
        rows = conn.execute(
            "SELECT extract(minute FROM window_start)::int, avg_value FROM health_metrics_1min "
            "WHERE device_id = %s ORDER BY 1",
            (device,),
        ).fetchall()
        dead = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE kafka_topic = %s", (topic,)
        ).fetchone()[0]
        conn.execute("DELETE FROM health_metrics_1min WHERE device_id = %s", (device,))
    assert rows == [(1, 101.0)], "only the committed window is stored"
    assert dead == 0
