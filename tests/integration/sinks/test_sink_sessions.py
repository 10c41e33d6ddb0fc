"""Integration: sink sessions (issue 12) killed, stopped and sharded, with exact counts."""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from test_sink_drain_integration import (
    known_mix,
    stored_equals_high_watermarks,
    table_state,
)

from openpipe.config import REPO_ROOT
from openpipe.sinks.drain import lock_name
from openpipe.sinks.samples import encode, wearable_event
from openpipe.sinks.writer import read_offsets
from openpipe.storage.db import advisory_unlock, try_advisory_lock

pytestmark = pytest.mark.integration
SINK = "wearable_readings"
LONG = 900  # seconds: a session the test stops itself


def start_session(
    topic: str, *, seconds: float = 120, shard: int = 0, shards: int = 1, crash_at=None
):
    """`python -m openpipe.sinks session` as its own process (so it can be signalled)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENPIPE_SINK_CRASH_AT"}
    if crash_at:
        env["OPENPIPE_SINK_CRASH_AT"] = crash_at
    argv = [sys.executable, "-m", "openpipe.sinks", "session", SINK, "--topic", topic]
    argv += ["--seconds", str(seconds), "--shard", str(shard), "--shards", str(shards)]
    # Its log goes to a file: a pipe nobody reads until the end blocks a long session once
    # 64 KiB of log lines (its own and librdkafka's) fill it.
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    process.log = log
    return process


def session_log(process: subprocess.Popen, tail: int = 3000) -> str:
    process.log.seek(0)
    return process.log.read()[-tail:]


def finish(process: subprocess.Popen, timeout: float = 120) -> dict:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, session_log(process)
    return json.loads(out.strip().splitlines()[-1])


def wait_for(predicate, timeout: float = 120, what: str = "condition", detail=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(0.1)


def committed(connect, topic: str) -> int:
    with connect() as conn:
        return conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE kafka_topic = %s",
            (topic,),
        ).fetchone()[0]


def drain_detail(connect, topic: str, sessions: dict[int, subprocess.Popen]) -> str:
    """Where each partition's committed offset stands, and how each session is doing."""
    with connect() as conn:
        offsets = read_offsets(conn, SINK, topic)
    lines = [f"committed offsets: {dict(sorted(offsets.items()))}"]
    for shard, process in sessions.items():
        state = "running" if process.poll() is None else f"exited {process.returncode}"
        lines.append(f"shard {shard} ({state}), log tail:\n{session_log(process, 1500)}")
    return "\n".join(lines)


def locks_held(connect, topic: str, partitions: list[int]) -> bool:
    """True when someone else holds the advisory lock of every partition."""
    with connect() as conn:
        for p in partitions:
            if try_advisory_lock(conn, lock_name(SINK, topic, p)):
                advisory_unlock(conn, lock_name(SINK, topic, p))
                return False
    return True


def stop_session(process: subprocess.Popen) -> tuple[dict, float]:
    """SIGTERM, then (result, seconds until the process exited)."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    result = finish(process, timeout=60)
    return result, time.monotonic() - sent


def test_session_killed_mid_transaction_loses_and_doubles_nothing(
    settings, connect, make_topic, produce
):
    topic = make_topic("sesskill")
    now = int(time.time() * 1000)
    messages, expected = known_mix(now, 25_000, seed=13)
    produce(topic, messages, now)
    # after_write: rows, dead letters and offsets are written, the COMMIT is not.
    crashed = start_session(topic, crash_at="after_write")
    crashed.wait(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, session_log(crashed)
    with connect() as conn:
        before = table_state(conn, topic)
    assert before["rows"] == 0 and before["dead"] == {}, "the killed transaction left nothing"
    # The dead backend's advisory locks are gone: the next session is not locked out.
    session = start_session(topic)
    wait_for(lambda: committed(connect, topic) == len(messages), what="the next session to drain")
    result, _ = stop_session(session)
    assert result["skipped_reason"] is None
    with connect() as conn:
        after = table_state(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, SINK, topic)
    assert after["rows"] == after["distinct"] == expected["rows"]
    assert after["dead"] == expected["dead"]


def test_session_drains_a_trickle_within_seconds_and_stops_within_5_s(
    settings, connect, make_topic, produce
):
    """A session keeps draining what arrives; SIGTERM (what `openpipe down` sends) ends it
    after the transaction in flight, with everything it read committed."""
    topic = make_topic("sessstop")
    rng = random.Random(17)
    session = start_session(topic, seconds=300)
    stop_producing = threading.Event()
    produced = []

    def trickle() -> None:
        while not stop_producing.is_set():
            now = int(time.time() * 1000)
            batch = [(b"k%d" % i, encode(wearable_event(rng, now)), None) for i in range(200)]
            produced.append(produce(topic, batch, now))
            time.sleep(0.2)

    producer = threading.Thread(target=trickle)
    producer.start()
    try:
        wait_for(lambda: committed(connect, topic) >= 2000, what="rows from the trickle")
        with connect() as conn:
            lag_s = conn.execute(
                "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM "
                "ingested_at - kafka_timestamp)) FROM wearable_readings WHERE kafka_topic = %s",
                (topic,),
            ).fetchone()[0]
        # The benchmark's target is 5 s; on two shared cores under other suites' load a
        # test allows 10 s, still below what one run per micro-batch could reach (20-40 s).
        assert lag_s < 10, f"freshness p95 {lag_s:.1f} s in a session"
    finally:
        stop_producing.set()
        producer.join()
    result, seconds = stop_session(session)
    assert seconds < 5, f"the session took {seconds:.1f} s to stop"
    assert result["stopped"] is True
    with connect() as conn:
        rows = table_state(conn, topic)["rows"]
    # Every message read before the stop is committed: rows = messages = stored offsets.
    assert rows == result["rows_written"] == result["messages"] == committed(connect, topic)


def test_three_shards_with_a_kill_give_exact_counts(settings, connect, make_topic, produce):
    """pipeline.sink_shards = 3: one session per partition; one is SIGKILLed mid-stream and
    replaced; in the end every valid event is one row and every poison one dead letter."""
    topic = make_topic("shards")
    now = int(time.time() * 1000)
    messages, expected = known_mix(now, 60_000, seed=23)
    # They run until stopped below: on a loaded machine the steps before the drain can
    # outlast a session's default 120 s, and a shard that ended would never drain.
    sessions = {
        shard: start_session(topic, shard=shard, shards=3, seconds=LONG) for shard in range(3)
    }
    # A second session of shard 1 finds its partition locked and ends at once.
    wait_for(lambda: locks_held(connect, topic, [0, 1, 2]), 120, "each session's lock")
    extra = finish(start_session(topic, shard=1, shards=3, seconds=5))
    assert extra["skipped_reason"] and "holds the lock" in extra["skipped_reason"]

    half = len(messages) // 2
    produce(topic, messages[:half], now)
    wait_for(lambda: committed(connect, topic) > 0, what="a first commit")
    sessions[1].send_signal(signal.SIGKILL)  # mid-stream, maybe mid-transaction
    sessions[1].wait(timeout=30)
    # PostgreSQL frees the dead session's partition lock once it notices the client is gone
    # (at once when its backend is idle, after the statement in flight otherwise); a
    # session started before that finds the lock held and ends, as it should (seen here).
    wait_for(
        lambda: not locks_held(connect, topic, [1]), 120, "the killed session's lock to be freed"
    )
    produce(topic, messages[half:], now)
    sessions[1] = start_session(topic, shard=1, shards=3, seconds=LONG)
    wait_for(
        lambda: committed(connect, topic) == len(messages),
        180,
        f"all shards to drain {len(messages)} messages",
        lambda: drain_detail(connect, topic, sessions),
    )
    results = {shard: stop_session(p)[0] for shard, p in sessions.items()}
    assert sorted(p for r in results.values() for p in r["partitions"]) == [0, 1, 2]
    assert all(len(r["partitions"]) == 1 for r in results.values())
    with connect() as conn:
        state = table_state(conn, topic)
        assert stored_equals_high_watermarks(settings, conn, SINK, topic)
    assert state["rows"] == state["distinct"] == expected["rows"]
    assert state["dead"] == expected["dead"]
