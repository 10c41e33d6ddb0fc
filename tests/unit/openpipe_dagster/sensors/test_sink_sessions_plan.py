"""The lag sensor's plan: which shards need a session, which session needs a successor."""

from types import SimpleNamespace

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.runs import SHARD_TAG
from openpipe_dagster.sensors.sinks import cursor_marks, handover_lead_s, plan_shards

STARTED = dg.DagsterRunStatus.STARTED
QUEUED = dg.DagsterRunStatus.QUEUED


def record(run_id: str, shard: int | None, status=STARTED, start_time: float | None = 0.0):
    tags = {} if shard is None else {SHARD_TAG: str(shard)}
    run = SimpleNamespace(run_id=run_id, tags=tags, status=status)
    return SimpleNamespace(dagster_run=run, start_time=start_time)


def test_shards_without_a_session_are_idle():
    idle, ending = plan_shards([record("a", 1, start_time=1000)], 3, 1010, 900, 120)
    assert idle == [0, 2] and ending == {}


def test_a_run_without_the_shard_tag_counts_as_shard_0():
    idle, _ = plan_shards([record("ui", None, start_time=1000)], 1, 1010, 900, 120)
    assert idle == []


def test_a_session_in_its_last_lead_seconds_gets_a_successor_once():
    now = 1000 + 900 - 100
    assert plan_shards([record("a", 0, start_time=1000)], 1, now, 900, 120) == ([], {0: "a"})
    successor = record("b", 0, status=QUEUED, start_time=None)
    assert plan_shards([record("a", 0, start_time=1000), successor], 1, now, 900, 120) == ([], {})


def test_a_queued_or_young_session_needs_nothing():
    assert plan_shards([record("q", 0, status=QUEUED, start_time=None)], 1, 5000, 900, 120) == (
        [],
        {},
    )
    assert plan_shards([record("a", 0, start_time=1000)], 1, 1100, 900, 120) == ([], {})


def test_cursor_marks_read_json_and_ignore_older_cursors():
    assert cursor_marks('{"0": 5, "2": 7}') == {0: 5, 2: 7}
    assert cursor_marks("wearable_readings-0123456789abcdef") == {}
    assert cursor_marks(None) == {}


def test_the_handover_lead_covers_missed_ticks_and_fits_in_a_session():
    settings = load_settings()
    lead = handover_lead_s(settings)
    assert lead >= 3 * settings.pipeline.sensor_min_interval_s
    assert lead <= settings.pipeline.session_seconds / 2
