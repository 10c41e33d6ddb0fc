"""Unit tests: turning Kafka messages into rows, duplicates and dead letters."""

import random
import time
from datetime import UTC, datetime

import orjson
import pytest

from openpipe.config import load_settings
from openpipe.events import format_event_time
from openpipe.sinks import SINKS
from openpipe.sinks.batch import Batch
from openpipe.sinks.samples import POISON_KINDS, encode, poison_wearables, wearable_event

NOW_MS = int(time.time() * 1000)


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def _batch(settings, table: str) -> Batch:
    return Batch.for_sink(SINKS[table], settings, topic="t")


def test_every_poison_kind_is_dead_lettered_under_its_kind(settings):
    batch = _batch(settings, "wearable_readings")
    poison = poison_wearables(random.Random(3), NOW_MS)
    for offset, (kind, value) in enumerate(poison):
        batch.add(0, offset, b"k", value, NOW_MS, [("openpipe-fault", kind.encode())])
    assert batch.rows == []
    assert [(row[6], row[8]) for row in batch.dead_letters] == [(k, k) for k in POISON_KINDS]
    assert all(row[7] for row in batch.dead_letters), "every dead letter says why"


def test_duplicate_event_ids_make_one_row(settings):
    batch = _batch(settings, "wearable_readings")
    event = encode(wearable_event(random.Random(1), NOW_MS))
    for offset in range(3):
        batch.add(1, offset, b"k", event, NOW_MS)
    assert len(batch.rows) == 1 and batch.duplicates == 2
    assert batch.messages == 3 and batch.dead_letters == []


def test_an_event_id_seen_again_at_another_time_is_a_duplicate(settings):
    batch = _batch(settings, "wearable_readings")
    event = wearable_event(random.Random(4), NOW_MS - 60_000)
    batch.add(0, 0, b"k", encode(event), NOW_MS)
    batch.add(0, 1, b"k", encode(event | {"event_time": format_event_time(NOW_MS)}), NOW_MS)
    assert len(batch.rows) == 1 and batch.duplicates == 1 and batch.dead_letters == []
    assert batch.rows[0][1] == datetime.fromtimestamp((NOW_MS - 60_000) / 1000, tz=UTC)


def test_wearable_row_keeps_only_the_metric_fields_and_fractions(settings):
    event = wearable_event(random.Random(2), NOW_MS)
    event.update(metric="heart_rate", heart_rate_bpm=100.5, glucose_mg_dl=99)
    batch = _batch(settings, "wearable_readings")
    batch.add(2, 7, b"k", encode(event), NOW_MS)
    row = dict(zip(SINKS["wearable_readings"].column_names, batch.rows[0], strict=True))
    assert row["heart_rate_bpm"] == 100.5 and row["glucose_mg_dl"] is None
    assert (row["kafka_partition"], row["kafka_offset"]) == (2, 7)
    assert row["event_time"].tzinfo is not None


def test_tombstone_key_bytes_are_kept_readable(settings):
    batch = _batch(settings, "gps_points")
    batch.add(0, 0, b"\xffkey\x00", None, NOW_MS)
    (letter,) = batch.dead_letters
    assert letter[6] == "tombstone" and "\x00" not in letter[3]


def _metric(**changes):
    record = {
        "window_start": "2025-01-01T10:00:00.000Z",
        "window_end": "2025-01-01T10:01:00.000Z",
        "device_id": "wearable-0001",
        "patient_id": "patient-0001",
        "metric": "heart_rate",
        "reading_count": 12,
        "avg_value": 101.5,
        "min_value": 90,
        "max_value": 120.0,
    }
    record.update(changes)
    return orjson.dumps(record)


def test_flink_metric_record_becomes_a_row(settings):
    batch = _batch(settings, "health_metrics_1min")
    batch.add(0, 5, b"k", _metric(), NOW_MS)
    (row,) = batch.table_rows()
    assert row[0] == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert row[5:9] == (12, 101.5, 90.0, 120.0)


def test_reemitted_window_keeps_the_latest_values_once(settings):
    batch = _batch(settings, "health_metrics_1min")
    batch.add(0, 0, b"k", _metric(avg_value=100.0), NOW_MS)
    batch.add(0, 1, b"k", _metric(avg_value=110.0), NOW_MS)
    (row,) = batch.table_rows()
    assert row[6] == 110.0 and batch.duplicates == 1


@pytest.mark.parametrize(
    "value,kind",
    [
        (_metric(avg_value=None), "null_value"),
        (_metric(reading_count="12"), "wrong_type"),
        (_metric(window_start="soon"), "bad_timestamp"),
        (_metric(window_end="2025-01-01T09:00:00.000Z"), "out_of_range"),
        (_metric(device_id="a\x00b"), "unstorable_value"),
        (b'{"avg_value": NaN}', "non_finite_number"),
        (_metric().replace(b'"heart_rate"', b"1e400"), "non_finite_number"),
        (_metric().replace(b'"patient-0001"', b'"\\ud800"'), "not_utf8"),
        (b"\xff\xfe", "not_utf8"),
        (b"[]", "not_an_object"),
        (None, "tombstone"),
    ],
)
def test_bad_flink_records_are_dead_lettered(settings, value, kind):
    batch = _batch(settings, "health_metrics_1min")
    batch.add(0, 0, None, value, NOW_MS)
    assert batch.table_rows() == [] and batch.dead_letter_kinds == {kind: 1}


def test_alert_record_becomes_a_row(settings):
    record = {
        "alert_time": "2025-01-01T10:01:00.000Z",
        "window_start": "2025-01-01T10:00:00.000Z",
        "window_end": "2025-01-01T10:01:00.000Z",
        "device_id": "wearable-0001",
        "patient_id": "patient-0001",
        "alert_type": "elevated_heart_rate",
        "observed_value": 130.2,
        "threshold": 100,
        "severity": "high",
    }
    batch = _batch(settings, "health_alerts")
    batch.add(1, 0, b"k", orjson.dumps(record), NOW_MS)
    (row,) = batch.table_rows()
    assert row[5:9] == ("elevated_heart_rate", 130.2, 100.0, "high")
