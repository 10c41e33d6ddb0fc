"""Integration: exact counts, crashes at every point, Postgres restarts and replays (docs/architecture.md §6)."""

import base64
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

import orjson
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from openpipe import kafka
from openpipe.sinks import SINKS, drain_topic
from openpipe.sinks.samples import POISON_KINDS, encode, poison_wearables, wearable_event
from openpipe.stack import jars
from openpipe.stack import kafka as stack_kafka

pytestmark = pytest.mark.integration
FAULT = "openpipe-fault"


def known_mix(now_ms: int, valid: int, *, seed: int = 11) -> tuple[list, dict]:
    """`valid` distinct events, 10% re-sent as duplicates, and two of every poison kind."""
    rng = random.Random(seed)
    events = [encode(wearable_event(rng, now_ms - 10 * i)) for i in range(valid)]
    messages = [(b"k%d" % (i % 50), v, None) for i, v in enumerate(events)]
    messages += [
        (b"k%d" % (i % 50), events[i], [(FAULT, b"duplicate")]) for i in range(0, valid, 10)
    ]
    for _ in range(2):
        messages += [(b"p", v, [(FAULT, k.encode())]) for k, v in poison_wearables(rng, now_ms)]
    rng.shuffle(messages)
    return messages, {"rows": valid, "dead": dict.fromkeys(POISON_KINDS, 2)}


def table_state(conn, topic: str) -> dict:
    """Counts, duplicate check, dead letters by kind, and a fingerprint incl. xmin."""
    rows, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM wearable_readings WHERE kafka_topic = %s",
        (topic,),
    ).fetchone()
    dead = dict(
        conn.execute(
            "SELECT error_kind, count(*) FROM dead_letters WHERE kafka_topic = %s GROUP BY 1",
            (topic,),
        ).fetchall()
    )
    fingerprint = conn.execute(
        "SELECT md5(string_agg(xmin::text || ':' || event_id::text, ',' ORDER BY event_id)) "
        "FROM wearable_readings WHERE kafka_topic = %s",
        (topic,),
    ).fetchone()[0]
    return {"rows": rows, "distinct": distinct, "dead": dead, "fingerprint": fingerprint}


def dead_letter_fingerprint(conn, topic: str) -> str | None:
    """A fingerprint of the topic's dead letters incl. xmin: any rewrite changes it."""
    return conn.execute(
        "SELECT md5(string_agg(xmin::text || kafka_offset::text, ',' ORDER BY kafka_partition, "
        "kafka_offset)) FROM dead_letters WHERE kafka_topic = %s",
        (topic,),
    ).fetchone()[0]


def stored_equals_high_watermarks(settings, conn, sink: str, topic: str) -> bool:
    stored = dict(
        conn.execute(
            "SELECT kafka_partition, next_offset FROM sink_offsets "
            "WHERE sink = %s AND kafka_topic = %s",
            (sink, topic),
        ).fetchall()
    )
    consumer = kafka.make_consumer(settings.kafka.bootstrap_servers, "openpipe-sink-tests")
    try:
        marks = kafka.high_watermarks(consumer, topic)
    finally:
        consumer.close()
    return stored == marks


def restart_after_first_commit(connect, topic: str, restart, timeout_s: float = 120) -> None:
    """Call `restart` as soon as sink_offsets shows a committed chunk of `topic`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with connect() as conn:
            moved = conn.execute(
                "SELECT count(*) FROM sink_offsets WHERE kafka_topic = %s AND next_offset > 0",
                (topic,),
            ).fetchone()[0]
        if moved:
            break
        time.sleep(0.05)
    restart()


def drain_all(settings, connect, topic: str, sink: str = "wearable_readings"):
    results = []
    while True:
        result = drain_topic(
            SINKS[sink],
            settings,
            connect=connect,
            make_consumer=lambda g: kafka.make_consumer(settings.kafka.bootstrap_servers, g),
            topic=topic,
        )
        results.append(result)
        if result.total_lag == 0:
            return results


def test_known_mix_gives_exact_counts_per_table_and_kind(settings, connect, make_topic, produce):
    topic = make_topic("mix")
    now = int(time.time() * 1000)
    messages, expected = known_mix(now, 3000)
    produced = produce(topic, messages, now)
    results = drain_all(settings, connect, topic)
    with connect() as conn:
        state = table_state(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, "wearable_readings", topic)
    assert state["rows"] == state["distinct"] == expected["rows"]
    assert state["dead"] == expected["dead"]
    duplicates = sum(r.duplicates_dropped for r in results)
    assert duplicates == 300
    # docs/architecture.md §6 invariant: produced = valid rows + dead letters, duplicates counted once.
    assert produced - duplicates == state["rows"] + sum(state["dead"].values())


@pytest.mark.parametrize("point", ["before_write", "after_write", "after_commit"])
def test_kill_9_at_any_point_loses_and_duplicates_nothing(
    settings, connect, make_topic, produce, drain_process, point
):
    topic = make_topic(point.replace("_", ""))
    now = int(time.time() * 1000)
    messages, expected = known_mix(now, 25_000, seed=5)
    produce(topic, messages, now)
    crashed = drain_process("wearable_readings", topic, crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    with connect() as conn:
        before = table_state(conn, topic)
    if point == "after_commit":
        assert 0 < before["rows"] < expected["rows"], "one chunk committed, the rest not"
    else:
        assert before["rows"] == 0 and before["dead"] == {}
    rerun = drain_process("wearable_readings", topic)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with connect() as conn:
        after = table_state(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, "wearable_readings", topic)
    assert after["rows"] == after["distinct"] == expected["rows"]
    assert after["dead"] == expected["dead"]


def test_postgres_restart_mid_run_dead_letters_nothing_extra(
    settings, connect, make_topic, produce, drain_process, restart_postgres
):
    topic = make_topic("pgrestart")
    now = int(time.time() * 1000)
    messages, expected = known_mix(now, 150_000, seed=9)
    produce(topic, messages, now)
    # Restart once the run has committed its first chunk (not after a fixed delay: on a
    # loaded machine the run process may still be importing then, and miss the restart).
    restarter = threading.Thread(
        target=restart_after_first_commit, args=(connect, topic, restart_postgres)
    )
    restarter.start()
    attempts = []
    try:
        first = drain_process("wearable_readings", topic)
        attempts.append(first.returncode)
    finally:
        restarter.join()
    deadline = time.monotonic() + 120
    while attempts[-1] != 0 and time.monotonic() < deadline:  # what Dagster retries do
        time.sleep(2)
        attempts.append(drain_process("wearable_readings", topic).returncode)
    assert attempts[0] != 0, "the restart should have failed the first run"
    assert attempts[-1] == 0, attempts
    with connect() as conn:
        state = table_state(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, "wearable_readings", topic)
    assert state["rows"] == state["distinct"] == expected["rows"]
    assert state["dead"] == expected["dead"], "an outage must never become a dead letter"


def test_replay_from_offset_zero_changes_no_row(settings, connect, make_topic, produce):
    topic = make_topic("replay")
    now = int(time.time() * 1000)
    messages, _ = known_mix(now, 5000, seed=3)
    produce(topic, messages, now)
    drain_all(settings, connect, topic)
    with connect() as conn:
        before = table_state(conn, topic)
        dead_before = dead_letter_fingerprint(conn, topic)
        conn.execute("UPDATE sink_offsets SET next_offset = 0 WHERE kafka_topic = %s", (topic,))
    replay = drain_all(settings, connect, topic)
    assert sum(r.rows_written for r in replay) == 0
    with connect() as conn:
        after = table_state(conn, topic)
        dead_after = dead_letter_fingerprint(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, "wearable_readings", topic)
    assert after == before and dead_after == dead_before


def test_fresh_events_copy_straight_in_and_a_rewind_writes_only_new_rows(
    settings, connect, make_topic, produce
):
    topic = make_topic("rewind")
    now = int(time.time() * 1000)
    rng = random.Random(21)
    first = [(b"k%d" % i, encode(wearable_event(rng, now - i)), None) for i in range(2000)]
    produce(topic, first, now)
    fresh = drain_all(settings, connect, topic)
    assert sum(r.rows_written for r in fresh) == 2000
    assert sum(r.staged_transactions for r in fresh) == 0, "no key was stored: COPY straight in"
    with connect() as conn:
        stored = conn.execute(
            "SELECT event_id, xmin::text FROM wearable_readings WHERE kafka_topic = %s", (topic,)
        ).fetchall()
        # Rewind every partition halfway, as an operator repairing offsets might.
        conn.execute(
            "UPDATE sink_offsets SET next_offset = next_offset / 2 WHERE kafka_topic = %s",
            (topic,),
        )
        rewound = conn.execute(
            "SELECT sum(next_offset) FROM sink_offsets WHERE kafka_topic = %s", (topic,)
        ).fetchone()[0]
    second = [(b"k%d" % i, encode(wearable_event(rng, now - i)), None) for i in range(500)]
    produce(topic, second, now)
    mixed = drain_all(settings, connect, topic)
    assert sum(r.rows_written for r in mixed) == 500
    assert sum(r.duplicates_dropped for r in mixed) == 2000 - rewound
    assert sum(r.staged_transactions for r in mixed) >= 1
    with connect() as conn:
        after = dict(
            conn.execute(
                "SELECT event_id, xmin::text FROM wearable_readings WHERE kafka_topic = %s",
                (topic,),
            ).fetchall()
        )
        assert stored_equals_high_watermarks(settings, conn, "wearable_readings", topic)
    assert len(after) == 2500
    assert all(after[event_id] == xmin for event_id, xmin in stored), "stored rows untouched"


def test_flink_results_upsert_and_replay_changes_nothing(
    settings, connect, make_topic, produce, window_day
):
    topic = make_topic("metrics")
    now = int(time.time() * 1000)
    device = f"itest-{topic[-8:]}"

    def metric(start_min: int, avg: float) -> bytes:
        start = f"{window_day}T10:{start_min:02d}:00.000Z"
        end = f"{window_day}T10:{start_min + 1:02d}:00.000Z"
        return orjson.dumps(
            {
                "window_start": start,
                "window_end": end,
                "device_id": device,
                "patient_id": "p-1",
                "metric": "heart_rate",
                "reading_count": 12,
                "avg_value": avg,
                "min_value": 60.0,
                "max_value": 140.0,
            }
        )

    key = device.encode()
    produce(topic, [(key, metric(0, 90.0), None), (key, metric(1, 101.0), None)], now)
    drain_all(settings, connect, topic, sink="health_metrics_1min")
    produce(topic, [(key, metric(1, 105.0), None), (key, b"{broken", None)], now)
    drain_all(settings, connect, topic, sink="health_metrics_1min")
    query = (
        "SELECT extract(minute FROM window_start)::int, avg_value, xmin::text "
        "FROM health_metrics_1min WHERE device_id = %s ORDER BY 1"
    )
    with connect() as conn:
        rows = conn.execute(query, (device,)).fetchall()
        dead = conn.execute(
            "SELECT error_kind FROM dead_letters WHERE kafka_topic = %s", (topic,)
        ).fetchall()
        conn.execute("UPDATE sink_offsets SET next_offset = 0 WHERE kafka_topic = %s", (topic,))
    assert [(m, v) for m, v, _ in rows] == [(0, 90.0), (1, 105.0)]
    assert dead == [("malformed_json",)]
    drain_all(settings, connect, topic, sink="health_metrics_1min")
    with connect() as conn:
        replayed = conn.execute(query, (device,)).fetchall()
        conn.execute("DELETE FROM health_metrics_1min WHERE device_id = %s", (device,))
    assert replayed[0] == rows[0], "an unchanged window is not rewritten"
    assert [(m, v) for m, v, _ in replayed] == [(0, 90.0), (1, 105.0)]


def test_kafka_down_is_not_dead_lettered(settings, connect, tmp_path):
    """Kafka dying mid-run loses nothing, skips nothing and files no dead letter.

    A broker of the test's own (the stack's is shared) is SIGKILLed right after the
    sink's first fetch returns messages, while most of the topic is still unread. The
    run may fail with a KafkaException or end at its deadline with the rest as lag;
    either way the stored offsets cover exactly the rows written.
    """
    broker = _throwaway_broker(settings, tmp_path)
    topic = f"itest-sinks-kafka-down-{uuid.uuid4().hex[:8]}"
    produced = 20_000
    try:
        admin = kafka.admin_client(broker.bootstrap)
        for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
            future.result()
        now = int(time.time() * 1000)
        rng = random.Random(31)
        producer = kafka.make_producer(broker.bootstrap)
        for i in range(produced):
            producer.produce(topic, encode(wearable_event(rng, now - i)), b"k%d" % (i % 8))
            if i % 1000 == 0:
                producer.poll(0)
        assert producer.flush(60) == 0

        def consumer_that_loses_kafka(group: str):
            # Small fetches, so the local queue holds little of the topic when Kafka dies.
            real = kafka.make_consumer(
                broker.bootstrap,
                group,
                **{"max.partition.fetch.bytes": 4096, "queued.max.messages.kbytes": 16},
            )
            return _KillAfterFirstFetch(real, broker.process)

        try:
            result = drain_topic(
                SINKS["wearable_readings"],
                settings,
                connect=connect,
                make_consumer=consumer_that_loses_kafka,
                topic=topic,
                max_seconds=10,
            )
        except KafkaException:
            result = None
        with connect() as conn:
            letters, rows, stored = conn.execute(
                "SELECT (SELECT count(*) FROM dead_letters WHERE kafka_topic = %(t)s), "
                "(SELECT count(*) FROM wearable_readings WHERE kafka_topic = %(t)s), "
                "(SELECT coalesce(sum(next_offset), 0) FROM sink_offsets "
                "WHERE kafka_topic = %(t)s)",
                {"t": topic},
            ).fetchone()
        assert letters == 0, "a Kafka outage must never become a dead letter"
        assert rows == stored, "the stored offsets cover exactly the rows written"
        assert stored < produced, "Kafka died before the run could read everything"
        assert result is None or result.total_lag > 0, "a run that ends says what is unread"
    finally:
        broker.process.kill()
        broker.process.wait(30)
        with connect() as conn:
            for table in ("wearable_readings", "dead_letters", "sink_offsets"):
                conn.execute(f"DELETE FROM {table} WHERE kafka_topic = %s", (topic,))


class _KillAfterFirstFetch:
    """A real consumer; the broker is SIGKILLed once its first fetch returned messages."""

    def __init__(self, consumer, broker: subprocess.Popen) -> None:
        self._consumer, self._broker, self._killed = consumer, broker, False

    def consume(self, *args, **kwargs):
        messages = self._consumer.consume(*args, **kwargs)
        if messages and not self._killed:
            self._broker.send_signal(signal.SIGKILL)
            self._broker.wait(30)
            self._killed = True
        return messages

    def __getattr__(self, name: str):
        return getattr(self._consumer, name)


@dataclass
class _Broker:
    process: subprocess.Popen
    bootstrap: str


def _throwaway_broker(settings, tmp_path) -> _Broker:
    """A single-node KRaft broker on free ports with its data in tmp_path."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    local = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{ports[0]}", "controller_port": ports[1]}
            )
        }
    )
    properties = tmp_path / "server.properties"
    text = stack_kafka.render_properties(local)
    text = text.replace(f"log.dirs={stack_kafka.DATA_DIR}", f"log.dirs={tmp_path / 'data'}")
    properties.write_text(text)
    java = ["java", "-Xmx256m", "-cp", f"{jars.KAFKA_JARS}/*"]
    subprocess.run(
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
            "-c",
            str(properties),
            "--standalone",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    process = subprocess.Popen(
        [*java, "kafka.Kafka", str(properties)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{ports[0]}"
    deadline = time.monotonic() + 120
    while True:
        try:
            kafka.admin_client(bootstrap).list_topics(timeout=2)
            return _Broker(process, bootstrap)
        except KafkaException:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.5)
