"""Restaurant and GPS events from the simulator land whole: rows, dead letters by kind, jsonb items."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from test_sink_drain_integration import drain_all  # same folder, on sys.path under pytest

from openpipe.config import REPO_ROOT
from openpipe.events import INVALID_FAULT_KINDS

pytestmark = pytest.mark.integration


def _lunch_start() -> datetime:
    """The latest 07:00 UTC (lunch in India) that is safely in the past."""
    now = datetime.now(UTC)
    start = now.replace(hour=7, minute=0, second=0, microsecond=0)
    return start if start < now - timedelta(minutes=5) else start - timedelta(days=1)


def _simulated(family_topic: str, start: datetime, seconds: int) -> list[dict]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "--seed",
            "3",
            "--dry-run",
            "--start",
            start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--duration",
            str(seconds),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    lines = [orjson.loads(line) for line in out.splitlines()]
    return [line for line in lines if line["topic"] == family_topic]


@pytest.mark.parametrize(
    ("family", "sink"), [("restaurants", "restaurant_orders"), ("gps", "gps_points")]
)
def test_simulated_family_lands_as_rows_and_dead_letters(
    settings, connect, make_topic, produce, family, sink
):
    start = _lunch_start()
    lines = _simulated(getattr(settings.kafka.topics, family), start, 300)
    topic = make_topic(family)
    sent_at = int((start + timedelta(seconds=300)).timestamp() * 1000)
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
    produced = produce(topic, messages, sent_at)
    results = drain_all(settings, connect, topic, sink)
    faults = [line["headers"].get("openpipe-fault") for line in lines]
    invalid = sum(1 for f in faults if f in INVALID_FAULT_KINDS)
    duplicates = sum(r.duplicates_dropped for r in results)
    with connect() as conn:
        rows = conn.execute(
            f"SELECT count(*) FROM {sink} WHERE kafka_topic = %s", (topic,)
        ).fetchone()[0]
        dead = dict(
            conn.execute(
                "SELECT injected_fault, count(*) FROM dead_letters WHERE kafka_topic = %s GROUP BY 1",
                (topic,),
            ).fetchall()
        )
        if family == "restaurants":
            first = next(line["value"] for line in lines if not line["headers"])
            stored = conn.execute(
                "SELECT items, total_inr FROM restaurant_orders WHERE event_id = %s",
                (first["event_id"],),
            ).fetchone()
            assert stored == (first["items"], first["total_inr"])
    assert produced == len(lines) > 50
    assert rows > 0
    assert sum(dead.values()) == invalid, dead
    assert set(dead) <= set(INVALID_FAULT_KINDS)
    assert rows + sum(dead.values()) + duplicates == produced
