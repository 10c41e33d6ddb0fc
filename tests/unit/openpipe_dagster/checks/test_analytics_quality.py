"""Pure scoring of the quality checks, the stream/batch classifier and the report chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openpipe.alert_report import decode_key, encode_key, svg_chart
from openpipe.config import load_settings
from openpipe_dagster.checks.scoring import (
    bad_rate_band,
    expected_bad_rate,
    pending_lag,
    score_fault_detection,
)
from openpipe_dagster.checks.stream_batch import LATE, MATCH, MISMATCH, classify_window, left_out


def test_fault_detection_perfect_scores():
    scores, false_rejections = score_fault_detection(
        [("malformed_json", "malformed_json", 4), ("out_of_range", "out_of_range", 2)],
        accepted={"out_of_range": 0},
    )
    assert false_rejections == 0
    assert scores["malformed_json"].precision == 1.0
    assert scores["out_of_range"].recall == 1.0
    assert scores["wrong_type"].precision is None  # nothing to score
    assert all(s.ok for s in scores.values())


def test_fault_detection_counts_mislabels_misses_and_false_rejections():
    scores, false_rejections = score_fault_detection(
        [
            ("wrong_type", "missing_field", 1),
            ("missing_field", "missing_field", 3),
            (None, "out_of_range", 2),
            ("late", "stale_timestamp", 1),
        ],
        accepted={"missing_field": 1},
    )
    assert false_rejections == 3
    assert scores["missing_field"].precision == pytest.approx(3 / 4)
    assert scores["missing_field"].recall == pytest.approx(3 / 4)
    assert not scores["missing_field"].ok
    assert scores["out_of_range"].precision == 0.0


def test_a_fault_labelled_with_a_kind_outside_the_fault_list_fails_the_check():
    scores, false_rejections = score_fault_detection([("wrong_type", "bad_timestamp", 5)], {})
    assert false_rejections == 0
    assert scores["bad_timestamp"].labelled == 5 and scores["bad_timestamp"].precision == 0.0
    assert not scores["bad_timestamp"].ok
    assert not all(s.ok for s in scores.values())


def test_recall_unknown_without_raw_ground_truth():
    scores, _ = score_fault_detection([("null_value", "null_value", 1)], accepted=None)
    assert scores["null_value"].recall is None


def test_expected_bad_rate_from_config():
    family = load_settings().devices.wearables
    p, kinds = family.bad_data_probability, family.fault_mix
    total = sum(kinds.values())
    invalid = p * (total - kinds["duplicate"] - kinds["late"]) / total
    assert expected_bad_rate(family) == pytest.approx(
        invalid / (1 - p * kinds["duplicate"] / total)
    )
    none = family.model_copy(update={"bad_data_probability": 0.0})
    assert expected_bad_rate(none) == 0.0


def test_bad_rate_band_narrows_with_more_messages():
    small = bad_rate_band(0.04, 1000, 4)
    large = bad_rate_band(0.04, 100000, 4)
    assert small[0] < large[0] < 0.04 < large[1] < small[1]
    assert bad_rate_band(0.0, 10, 4)[0] == 0.0


def test_pending_lag_counts_never_drained_partitions():
    assert pending_lag({0: 10, 1: 5, 2: 0}, {0: 10, 1: 2}) == {0: 0, 1: 3, 2: 0}


def _row(**overrides):
    row = {
        "all_count": 3,
        "all_avg": 80.0,
        "all_min": 70.0,
        "all_max": 90.0,
        "on_time_count": 3,
        "last_on_time_arrival": 3,
        "late_count": 0,
        "stream_count": 3,
        "stream_avg": 80.0,
        "stream_min": 70.0,
        "stream_max": 90.0,
        "counted_avg": 80.0,
        "counted_min": 70.0,
        "counted_max": 90.0,
    }
    return row | overrides


# Readings 70, 80, 90 arrive in that order; the stream counted the first two (75, 70..80).
FIRST_TWO = {"stream_count": 2, "stream_avg": 75.0, "stream_max": 80.0}
FIRST_TWO_COUNTED = {"counted_avg": 75.0, "counted_max": 80.0}


def test_classify_window():
    assert classify_window(_row(), 1e-9) == MATCH
    assert classify_window(_row(stream_avg=81.0, counted_avg=81.0), 1e-9) == MISMATCH
    missing = _row(stream_count=0, stream_avg=None, stream_min=None, stream_max=None)
    assert classify_window(missing, 1e-9) == MISMATCH


def test_a_window_may_leave_out_late_readings_that_arrived_last():
    late_last = _row(
        late_count=1, on_time_count=2, last_on_time_arrival=2, **FIRST_TWO, **FIRST_TWO_COUNTED
    )
    assert classify_window(late_last, 1e-9) == LATE
    assert left_out(late_last, LATE) == 1
    # Two late readings, one of which the stream still counted (its watermark lagged).
    one_counted = late_last | {"late_count": 2, "on_time_count": 1, "last_on_time_arrival": 1}
    assert classify_window(one_counted, 1e-9) == LATE
    all_late = _row(
        late_count=3,
        on_time_count=0,
        last_on_time_arrival=0,
        stream_count=0,
        stream_avg=None,
        stream_min=None,
        stream_max=None,
        counted_avg=None,
        counted_min=None,
        counted_max=None,
    )
    assert classify_window(all_late, 1e-9) == LATE
    assert left_out(all_late, LATE) == 3


def test_a_window_missing_an_on_time_reading_is_a_mismatch():
    # The third reading is on time (it arrived last but before the watermark passed).
    on_time_left_out = _row(late_count=1, last_on_time_arrival=3, **FIRST_TWO, **FIRST_TWO_COUNTED)
    assert classify_window(on_time_left_out, 1e-9) == MISMATCH
    # The stream's aggregate is not that of the first readings to arrive.
    wrong_values = _row(late_count=1, last_on_time_arrival=2, **FIRST_TWO, counted_avg=76.0)
    assert classify_window(wrong_values, 1e-9) == MISMATCH
    assert left_out(wrong_values, MISMATCH) == 0


def test_cursor_key_round_trip():
    key = ("2026-11-26T18:00:00+00:00", "w-1", "elevated_heart_rate", "2026-11-26T17:59:00+00:00")
    assert decode_key(encode_key(key)) == key
    assert decode_key(None) is None and decode_key("") is None


def test_svg_chart_draws_readings_threshold_and_alerts():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = [(t0 + timedelta(seconds=10 * i), 90.0 + i) for i in range(12)]
    svg = svg_chart(points, 100.0, [(t0 + timedelta(minutes=1), t0 + timedelta(minutes=2), 101.0)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<circle") == 1 and "<polyline" in svg and "stroke-dasharray" in svg
    assert "<svg" in svg_chart([], 100.0, [])
