"""Persona statistics of the wearable model: valid readings cross thresholds for real reasons."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import orjson
import pytest

from openpipe.config import load_settings
from simulator.wearables import WearableFleet

SETTINGS = load_settings()
START_MS = 1_767_205_800_000  # 2025-12-31T18:30:00Z = midnight IST
DAY_MS = 86_400_000


def one_day(persona: str, devices: int = 12, seed: int = 5) -> list[dict]:
    """A day of readings from `devices` patients who all have `persona`."""
    config = SETTINGS.devices.wearables.model_copy(
        update={"count": devices, "personas": {persona: 1.0}}
    )
    fleet = WearableFleet(config, seed, START_MS)
    events = []
    for t in range(START_MS, START_MS + DAY_MS, 600_000):
        events += [orjson.loads(v) for v in fleet.generate(t, t + 600_000).values]
    return events


def window_means(events: list[dict], field: str, window_ms: int) -> np.ndarray:
    """Per-device tumbling-window averages of `field`."""
    sums: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        if field in e:
            ms = np.datetime64(e["event_time"].rstrip("Z"), "ms").astype(np.int64)
            sums[e["device_id"], int(ms) // window_ms].append(e[field])
    return np.array([np.mean(v) for v in sums.values()])


@pytest.fixture(scope="module")
def healthy() -> list[dict]:
    return one_day("healthy")


def test_healthy_heart_rate_stays_mostly_in_normal_range(healthy: list[dict]) -> None:
    hr = np.array([e["heart_rate_bpm"] for e in healthy if e["metric"] == "heart_rate"])
    assert len(hr) == 12 * DAY_MS // 5000
    inside = np.mean((hr >= 55) & (hr <= 100))
    assert inside > 0.9, f"only {inside:.1%} of healthy heart rates within 55-100 bpm"


def test_healthy_glucose_stays_below_diabetic_levels(healthy: list[dict]) -> None:
    means = window_means(healthy, "glucose_mg_dl", 600_000)
    assert np.mean(means >= SETTINGS.flink.thresholds.glucose_mg_dl) < 0.01


def test_tachycardic_minute_averages_exceed_threshold_some_of_the_time() -> None:
    means = window_means(one_day("tachycardic"), "heart_rate_bpm", 60_000)
    above = np.mean(means > SETTINGS.flink.thresholds.heart_rate_bpm)
    assert 0.2 < above < 1.0, f"{above:.1%} of one-minute averages above threshold"


def test_diabetic_ten_minute_glucose_exceeds_threshold_some_of_the_time() -> None:
    means = window_means(one_day("diabetic"), "glucose_mg_dl", 600_000)
    above = np.mean(means >= SETTINGS.flink.thresholds.glucose_mg_dl)
    assert 0.05 < above < 0.9, f"{above:.1%} of ten-minute averages above threshold"


def test_hypertensive_pressure_is_often_elevated_and_diastolic_below_systolic() -> None:
    events = [e for e in one_day("hypertensive") if e["metric"] == "blood_pressure"]
    systolic = np.array([e["systolic_mmhg"] for e in events])
    diastolic = np.array([e["diastolic_mmhg"] for e in events])
    assert np.all(systolic > diastolic)
    assert 0.3 < np.mean(systolic >= SETTINGS.flink.thresholds.systolic_mmhg) < 1.0


def test_exercise_raises_heart_rate_above_resting(healthy: list[dict]) -> None:
    hr = np.array([e["heart_rate_bpm"] for e in healthy if e["metric"] == "heart_rate"])
    assert np.percentile(hr, 99.5) > np.median(hr) + 25, "no exercise episodes in a day"


def test_readings_follow_configured_frequencies(healthy: list[dict]) -> None:
    per_metric = defaultdict(int)
    for e in healthy:
        per_metric[e["metric"]] += 1
    w = SETTINGS.devices.wearables
    for metric, interval in (
        ("heart_rate", w.heart_rate_interval_s),
        ("blood_pressure", w.blood_pressure_interval_s),
        ("blood_sugar", w.blood_sugar_interval_s),
    ):
        assert per_metric[metric] == 12 * DAY_MS // int(interval * 1000)


def test_readings_are_fractional_numbers_not_truncated(healthy: list[dict]) -> None:
    hr = [e["heart_rate_bpm"] for e in healthy[:2000] if e["metric"] == "heart_rate"]
    assert any(v != int(v) for v in hr)
