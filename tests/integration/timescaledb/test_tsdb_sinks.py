"""Every sink writes into hypertables; Flink's results are upserted; replays change nothing."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from openpipe.config import REPO_ROOT
from openpipe.events import INVALID_FAULT_KINDS
from openpipe.sinks import SINKS

pytestmark = pytest.mark.integration
# Yesterday 07:00 UTC, lunch time in India: restaurants send orders then (at an Indian
# night 30 simulated seconds may hold none), whatever hour the suite runs at.
START = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0) - timedelta(days=1)


@functools.cache
def _simulation(seconds: int) -> tuple[dict, ...]:
    """The simulator's events of every topic (dry run: no Kafka), with fault headers."""
    window = ["--start", START.strftime("%Y-%m-%dT%H:%M:%SZ"), "--duration", str(seconds)]
    out = subprocess.run(
        [sys.executable, "-m", "simulator", "--seed", "5", "--dry-run", *window],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    return tuple(map(orjson.loads, out.splitlines()))


def simulated(topic: str, seconds: int = 30) -> list[dict]:
    """One topic's simulated events (one simulator run serves every test)."""
    return [line for line in _simulation(seconds) if line["topic"] == topic]


def chunks_holding(conn, table: str, column: str, topic: str) -> set[str]:
    """The chunk tables the topic's rows are stored in (empty unless it is a hypertable)."""
    return {
        name
        for (name,) in conn.execute(
            f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE {column} = %s",
            (topic,),
        )
        if name.startswith("_timescaledb_internal.")
    }


@pytest.mark.parametrize("sink", sorted(s.table for s in SINKS.values() if s.family))
def test_raw_sink_writes_valid_events_into_hypertable_chunks(
    migrated, connect_to, make_topic, produce, drain, sink
):
    spec = SINKS[sink]
    lines = simulated(spec.topic(migrated))
    topic = make_topic(spec.family)
    messages = [
        (
            line["key"].encode(),
            line["value"].encode()
            if isinstance(line["value"], str)
            else orjson.dumps(line["value"]),
            [(k, v.encode()) for k, v in line["headers"].items()] or None,
        )
        for line in lines
    ]
    produced = produce(topic, messages, int((START + timedelta(seconds=30)).timestamp() * 1000))
    results = drain(migrated, sink, topic)
    invalid = sum(
        1 for line in lines if line["headers"].get("openpipe-fault") in INVALID_FAULT_KINDS
    )
    duplicates = sum(r.duplicates_dropped for r in results)
    with connect_to(migrated) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {sink} WHERE kafka_topic = %s", (topic,))
        rows = rows.fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters WHERE kafka_topic = %s", (topic,))
        dead = dead.fetchone()[0]
        chunks = chunks_holding(conn, sink, "kafka_topic", topic)
    assert produced > 20 and rows > 0
    assert dead == invalid
    assert rows + dead + duplicates == produced
    assert chunks, f"{sink} rows are not in TimescaleDB chunks"


def _window(spec_table: str, device: str, minute: int, value: float) -> bytes:
    start = START + timedelta(minutes=minute)
    end = start + timedelta(minutes=10 if spec_table == "health_metrics_10min" else 1)
    common = {
        "window_start": start.isoformat().replace("+00:00", "Z"),
        "window_end": end.isoformat().replace("+00:00", "Z"),
        "device_id": device,
        "patient_id": "p-1",
    }
    if spec_table == "health_alerts":
        return orjson.dumps(
            {
                **common,
                "alert_time": common["window_end"],
                "alert_type": "elevated_heart_rate",
                "observed_value": value,
                "threshold": 100.0,
                "severity": "warning",
            }
        )
    metric = "blood_sugar" if spec_table == "health_metrics_10min" else "heart_rate"
    return orjson.dumps(
        {
            **common,
            "metric": metric,
            "reading_count": 12,
            "avg_value": value,
            "min_value": 60.0,
            "max_value": 240.0,
        }
    )


@pytest.mark.parametrize("sink", sorted(s.table for s in SINKS.values() if not s.family))
def test_flink_results_upsert_into_hypertables_and_replays_change_nothing(
    migrated, connect_to, make_topic, produce, drain, sink
):
    spec = SINKS[sink]
    topic = make_topic(sink.replace("_", "-"))
    device = f"itest-{topic[-8:]}"
    key, now = device.encode(), int(time.time() * 1000)
    value = "avg_value" if sink != "health_alerts" else "observed_value"
    step = 10 if sink == "health_metrics_10min" else 1
    produce(topic, [(key, _window(sink, device, 0, 150.0), None)], now)
    produce(topic, [(key, _window(sink, device, step, 101.0), None)], now)
    drain(migrated, sink, topic)
    # Flink re-emits a window (e.g. after a restore): the row is replaced, not added.
    produce(topic, [(key, _window(sink, device, step, 120.5), None)], now)
    drain(migrated, sink, topic)
    query = f"SELECT window_start, {value}, xmin::text FROM {sink} WHERE device_id = %s ORDER BY 1"
    with connect_to(migrated) as conn:
        rows = conn.execute(query, (device,)).fetchall()
        chunks = chunks_holding(conn, sink, "device_id", device)
        conn.execute("UPDATE sink_offsets SET next_offset = 0 WHERE kafka_topic = %s", (topic,))
    assert [v for _, v, _ in rows] == [150.0, 120.5]
    assert chunks, f"{sink} rows are not in TimescaleDB chunks"
    drain(migrated, sink, topic)
    with connect_to(migrated) as conn:
        replayed = conn.execute(query, (device,)).fetchall()
    assert replayed == rows, f"a replay rewrote {spec.table} rows"


def test_the_live_flink_jobs_results_land_in_hypertables(migrated, connect_to, drain):
    """What the running Flink job wrote to health-metrics-1min, drained into hypertables."""
    topic = migrated.kafka.topics.health_metrics_1min
    results = drain(migrated, "health_metrics_1min", topic)
    if not sum(r.messages for r in results):
        pytest.skip(f"{topic} is empty: the Flink job has not closed a window yet")
    with connect_to(migrated) as conn:
        rows, keys = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, metric, window_start)) "
            "FROM health_metrics_1min"
        ).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        chunks = conn.execute("SELECT count(*) FROM show_chunks('health_metrics_1min')")
        chunks = chunks.fetchone()[0]
    assert rows == keys > 0
    assert dead == 0
    assert chunks > 0
