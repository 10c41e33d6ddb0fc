"""Integration: one dedupe rule for the raw sinks, whatever the run boundaries (issue 16.2).

`event_id` alone names an event: the first message stored makes the row, a later one
with the same event_id (even at another event_time) is a duplicate, in one run or two.
"""

import random
import time

import pytest

from openpipe import kafka
from openpipe.events import format_event_time
from openpipe.sinks import SINKS, drain_topic
from openpipe.sinks.samples import encode, wearable_event

pytestmark = pytest.mark.integration


def _drain(settings, connect, topic: str) -> list:
    results = []
    while True:
        results.append(
            drain_topic(
                SINKS["wearable_readings"],
                settings,
                connect=connect,
                make_consumer=lambda g: kafka.make_consumer(settings.kafka.bootstrap_servers, g),
                topic=topic,
            )
        )
        if results[-1].total_lag == 0:
            return results


def _same_id_two_times(seed: int, now_ms: int) -> tuple[bytes, bytes]:
    first = wearable_event(random.Random(seed), now_ms - 60_000, device=7)
    again = dict(first, event_time=format_event_time(now_ms - 30_000))
    return encode(first), encode(again)


def _outcome(connect, topic: str, results: list) -> tuple:
    with connect() as conn:
        rows = conn.execute(
            "SELECT event_time FROM wearable_readings WHERE kafka_topic = %s", (topic,)
        ).fetchall()
        dead = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE kafka_topic = %s", (topic,)
        ).fetchone()[0]
    duplicates = sum(r.duplicates_dropped for r in results)
    return len(rows), [t.timestamp() for (t,) in rows], dead, duplicates


def test_same_event_id_at_two_times_gives_one_row_in_one_run_or_two(
    settings, connect, make_topic, produce
):
    now = int(time.time() * 1000)
    one_run, two_runs = make_topic("dedupe-one"), make_topic("dedupe-two")

    first, again = _same_id_two_times(101, now)
    produce(one_run, [(b"k", first, None), (b"k", again, None)], now)
    together = _outcome(connect, one_run, _drain(settings, connect, one_run))

    first, again = _same_id_two_times(102, now)
    produce(two_runs, [(b"k", first, None)], now)
    results = _drain(settings, connect, two_runs)
    produce(two_runs, [(b"k", again, None)], now)
    results += _drain(settings, connect, two_runs)
    apart = _outcome(connect, two_runs, results)

    expected_time = (now - 60_000) / 1000
    assert together == (1, [expected_time], 0, 1)
    assert apart == together, "the run boundary must not change the outcome"
