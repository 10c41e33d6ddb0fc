"""Bounded-mode tests of the health-window transform, fed from values (no Kafka).

One crafted dataset runs through `transform` once per module; each test looks at the
devices that carry its case. Rows are compared as sets, in any order.
"""

from __future__ import annotations

import pytest
from flink_table_helpers import batch_env, collect, encode, ms, rounded, values_source

from flink_jobs import health_windows
from flink_jobs.reference import expected_outputs, wearable_event
from openpipe.sinks import SINKS

W1 = ("2025-03-01T12:00:00.000Z", "2025-03-01T12:01:00.000Z")
W10 = ("2025-03-01T12:00:00.000Z", "2025-03-01T12:10:00.000Z")


def _hr(device: str, seconds: float, bpm: object, **kw: object) -> dict:
    return wearable_event(device, "heart_rate", ms(seconds), heart_rate_bpm=bpm, **kw)


def _bp(device: str, seconds: float, systolic: object, diastolic: object) -> dict:
    return wearable_event(
        device, "blood_pressure", ms(seconds), systolic_mmhg=systolic, diastolic_mmhg=diastolic
    )


def _sugar(device: str, seconds: float, glucose: object) -> dict:
    return wearable_event(device, "blood_sugar", ms(seconds), glucose_mg_dl=glucose)


def _invalid_readings() -> list[dict | bytes | None]:
    """One message per way a reading is invalid; none may enter a window."""
    broken = []
    for field, bad in [
        ("heart_rate_bpm", 251),
        ("heart_rate_bpm", 24.9),
        ("heart_rate_bpm", "95"),
        ("heart_rate_bpm", True),
        ("heart_rate_bpm", None),
        ("heart_rate_bpm", [95]),
        ("schema_version", 2),
        ("schema_version", 1.0),
        ("event_id", "not-a-uuid"),
        ("device_type", "restaurant_pos"),
        ("device_id", "   "),
        ("device_id", 42),
        ("patient_id", None),
        ("metric", "heart_beat"),
        ("event_time", "2025-03-01 12:00:30"),
        ("event_time", "2025-02-30T12:00:30.000Z"),
    ]:
        event = _hr("invalid", 30, 80)
        event[field] = bad
        broken.append(event)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    too_deep = _hr("invalid", 30, 80)
    too_deep["extra"] = deep
    nul = _hr("invalid", 30, 80)
    nul["patient_id"] = "patient\x00nul"
    broken += [too_deep, nul]
    missing = _hr("invalid", 30, 80)
    del missing["heart_rate_bpm"]
    broken += [
        missing,
        _bp("invalid", 30, 120, 120),  # systolic must exceed diastolic
        _sugar("invalid", 30, 701),
        b'{"schema_version": 1, "device_id": "invalid", ',  # malformed JSON
        b"[1, 2, 3]",
        b"\xff\xfe not utf-8",
        None,  # tombstone
    ]
    return broken


def _dataset() -> list[tuple[bytes | None, int]]:
    """(value, kafka_ts_ms) messages; sent at their event time unless said otherwise."""
    events: list[tuple[dict | bytes | None, int]] = []

    def sent(event: dict | bytes | None, seconds: float = 40) -> None:
        events.append((event, ms(seconds)))

    # Heart-rate average exactly at the threshold (100): no alert; 100.5 alerts.
    sent(_hr("hr-at-threshold", 5, 90))
    sent(_hr("hr-at-threshold", 15, 110))
    sent(_hr("hr-above", 5, 100.5))
    # Exactly 100 in decimal, 100.00000000000001 when summed as doubles in this order.
    for i, bpm in enumerate([103.7, 109.4, 104.5, 100.6, 81.8]):
        sent(_hr("hr-float-edge", 10 + i, bpm))
    # Systolic 140, diastolic 90 and glucose 180 exactly: each alerts.
    sent(_bp("bp-at-threshold", 20, 139, 89))
    sent(_bp("bp-at-threshold", 25, 141, 91))
    sent(_bp("bp-below", 20, 139.9, 89.9))
    sent(_sugar("sugar-at-threshold", 100, 170), 100)
    sent(_sugar("sugar-at-threshold", 400, 190), 400)
    sent(_sugar("sugar-below", 100, 179.99), 100)
    # Severity bands: 1.1x the threshold is high, 1.25x critical.
    sent(_hr("hr-high", 10, 110))
    sent(_hr("hr-critical", 10, 125))
    # A window with one reading.
    sent(_hr("single", 59.999, 72))
    # Valid readings among invalid ones.
    sent(_hr("invalid", 10, 60))
    sent(_hr("invalid", 50, 70, note=[[1], [2], {"a": [3]}] * 12))  # many brackets, shallow
    for bad in _invalid_readings():
        sent(bad)
    # Duplicates: the same event_id three times is one reading.
    dup = _hr("dupes", 12, 130)
    sent(dup)
    sent(dup, 41)
    sent(dup, 42)
    sent(_hr("dupes", 13, 70))
    # The same UUID in capitals is the same event, as the sinks count it (lowercased id).
    upper = dict(dup, event_id=dup["event_id"].upper())
    sent(upper, 43)
    cased = _hr("dupes-case", 5, 90)
    sent(cased)
    sent(dict(cased, event_id=cased["event_id"].upper()), 44)
    sent(_hr("dupes-case", 6, 110))
    # Many readings in one window, each sent twice: past the accumulator's scan, its index.
    for i in range(40):
        many = _hr("dupes-many", 1 + i, 60 + i)
        sent(many)
        sent(many, 45)
    # A future-timestamped event (an hour ahead of its send time) among valid ones.
    sent(_hr("future", 10, 80))
    sent(_hr("future", 3600, 250), 20)
    sent(_hr("future", 30, 90))
    # Two patient_ids in one window: the window's is the larger in code point (UTF-8 byte)
    # order, as Flink SQL's MAX and Python order text; UTF-16 order would pick U+FFFD.
    sent(_hr("patients", 10, 80, patient_id="patient-\ufffd"))
    sent(_hr("patients", 20, 90, patient_id="patient-\U0001f600"))
    # One device with every metric and two minutes: its windows of different kinds and ends
    # are open together, and each timer fires only the windows that have ended.
    sent(_hr("mixed", 10, 101))
    sent(_bp("mixed", 20, 141, 80))
    sent(_sugar("mixed", 30, 185), 30)
    sent(_hr("mixed", 70, 90), 70)
    # Stale: more than max_age_hours behind its send time.
    sent(_hr("stale", 10, 80), 25 * 3600)
    return [(encode(event), kafka_ms) for event, kafka_ms in events]


@pytest.fixture(scope="module")
def dataset() -> list[tuple[bytes | None, int]]:
    return _dataset()


@pytest.fixture(scope="module")
def outputs_tables(settings, dataset) -> health_windows.HealthTables:
    t_env = batch_env(settings)
    return health_windows.transform(t_env, values_source(t_env, dataset, settings), settings)


@pytest.fixture(scope="module")
def outputs(outputs_tables) -> dict[str, set[tuple]]:
    return {
        name: collect(table)
        for name, table in zip(outputs_tables._fields, outputs_tables, strict=True)
    }


def _metrics(outputs: dict, device: str) -> set[tuple]:
    return {
        r for name in ("metrics_1min", "metrics_10min") for r in outputs[name] if r[2] == device
    }


def _alerts(outputs: dict, device: str) -> set[tuple]:
    return {r for r in outputs["alerts"] if r[3] == device}


def test_heart_rate_average_exactly_at_threshold_raises_no_alert(outputs):
    assert _metrics(outputs, "hr-at-threshold") == {
        (*W1, "hr-at-threshold", "patient-hr-at-threshold", "heart_rate", 2, 100.0, 90.0, 110.0)
    }
    assert _alerts(outputs, "hr-at-threshold") == set()


def test_threshold_is_judged_on_the_exact_sum_not_a_rounded_float_average(outputs):
    assert _alerts(outputs, "hr-float-edge") == set()


def test_heart_rate_just_above_threshold_alerts_with_window_average(outputs):
    assert _alerts(outputs, "hr-above") == {
        (W1[1], *W1, "hr-above", "patient-hr-above", "elevated_heart_rate", 100.5, 100.0, "warning")
    }


def test_blood_pressure_exactly_at_thresholds_alerts_on_both(outputs):
    patient = "patient-bp-at-threshold"
    assert _metrics(outputs, "bp-at-threshold") == {
        (*W1, "bp-at-threshold", patient, "bp_systolic", 2, 140.0, 139.0, 141.0),
        (*W1, "bp-at-threshold", patient, "bp_diastolic", 2, 90.0, 89.0, 91.0),
    }
    assert _alerts(outputs, "bp-at-threshold") == {
        (W1[1], *W1, "bp-at-threshold", patient, "elevated_bp_systolic", 140.0, 140.0, "warning"),
        (W1[1], *W1, "bp-at-threshold", patient, "elevated_bp_diastolic", 90.0, 90.0, "warning"),
    }
    assert _alerts(outputs, "bp-below") == set()


def test_glucose_exactly_at_threshold_alerts_in_ten_minute_window(outputs):
    patient = "patient-sugar-at-threshold"
    assert _metrics(outputs, "sugar-at-threshold") == {
        (*W10, "sugar-at-threshold", patient, "blood_sugar", 2, 180.0, 170.0, 190.0)
    }
    assert _alerts(outputs, "sugar-at-threshold") == {
        (
            W10[1],
            *W10,
            "sugar-at-threshold",
            patient,
            "elevated_blood_sugar",
            180.0,
            180.0,
            "warning",
        )
    }
    assert _alerts(outputs, "sugar-below") == set()


def test_severity_grows_with_distance_above_threshold(outputs):
    assert {r[-1] for r in _alerts(outputs, "hr-high")} == {"high"}
    assert {r[-1] for r in _alerts(outputs, "hr-critical")} == {"critical"}


def test_window_with_a_single_reading(outputs):
    assert _metrics(outputs, "single") == {
        (*W1, "single", "patient-single", "heart_rate", 1, 72.0, 72.0, 72.0)
    }


def test_invalid_readings_are_ignored(outputs):
    assert _metrics(outputs, "invalid") == {
        (*W1, "invalid", "patient-invalid", "heart_rate", 2, 65.0, 60.0, 70.0)
    }
    assert _alerts(outputs, "invalid") == set()


def test_duplicate_event_ids_count_once(outputs):
    assert _metrics(outputs, "dupes") == {
        (*W1, "dupes", "patient-dupes", "heart_rate", 2, 100.0, 70.0, 130.0)
    }


def test_an_event_id_in_capitals_is_the_same_event(outputs):
    assert _metrics(outputs, "dupes-case") == {
        (*W1, "dupes-case", "patient-dupes-case", "heart_rate", 2, 100.0, 90.0, 110.0)
    }


def test_duplicates_count_once_in_a_window_with_many_readings(outputs):
    assert _metrics(outputs, "dupes-many") == {
        (*W1, "dupes-many", "patient-dupes-many", "heart_rate", 40, 79.5, 60.0, 99.0)
    }


def test_future_timestamp_event_is_left_out_of_its_neighbours_and_its_own_window(outputs):
    assert _metrics(outputs, "future") == {
        (*W1, "future", "patient-future", "heart_rate", 2, 85.0, 80.0, 90.0)
    }
    assert _alerts(outputs, "future") == set()


def test_the_windows_patient_is_the_largest_in_code_point_order(outputs):
    assert _metrics(outputs, "patients") == {
        (*W1, "patients", "patient-\U0001f600", "heart_rate", 2, 85.0, 80.0, 90.0)
    }


def test_the_outputs_have_the_columns_their_sinks_read(outputs_tables):
    """The contract of docs/architecture.md §5: each output, in order, as its table's sink
    stores it (before the Kafka position columns the sink adds)."""
    for name, table in zip(outputs_tables._fields, outputs_tables, strict=True):
        stored = [column for column, _ in SINKS[f"health_{name}"].columns]
        assert table.get_schema().get_field_names() == stored[: stored.index("kafka_topic")]


def test_each_window_of_a_device_fires_on_its_own_end(outputs):
    second = ("2025-03-01T12:01:00.000Z", "2025-03-01T12:02:00.000Z")
    assert _metrics(outputs, "mixed") == {
        (*W1, "mixed", "patient-mixed", "heart_rate", 1, 101.0, 101.0, 101.0),
        (*second, "mixed", "patient-mixed", "heart_rate", 1, 90.0, 90.0, 90.0),
        (*W1, "mixed", "patient-mixed", "bp_systolic", 1, 141.0, 141.0, 141.0),
        (*W1, "mixed", "patient-mixed", "bp_diastolic", 1, 80.0, 80.0, 80.0),
        (*W10, "mixed", "patient-mixed", "blood_sugar", 1, 185.0, 185.0, 185.0),
    }
    assert {(r[1], r[5]) for r in _alerts(outputs, "mixed")} == {
        (W1[0], "elevated_heart_rate"),
        (W1[0], "elevated_bp_systolic"),
        (W10[0], "elevated_blood_sugar"),
    }


def test_stale_event_is_ignored(outputs):
    assert _metrics(outputs, "stale") == set()


def test_all_outputs_match_the_python_reference_model(settings, dataset, outputs):
    expected = expected_outputs(settings, dataset)
    for name, rows in expected.items():
        assert outputs[name] == {rounded(r) for r in rows}, name


def test_configured_window_lengths_and_thresholds_match_the_reference_model(settings, dataset):
    """Heart rate, blood pressure and sugar on other lengths (120, 30 and 300 s), other
    thresholds and severity bands: the operator reads them all from the settings."""
    flink = settings.flink.model_copy(
        update={
            "heart_rate_window_s": 120,
            "blood_pressure_window_s": 30,
            "blood_sugar_window_s": 300,
            "severity_high_ratio": 1.05,
            "thresholds": settings.flink.thresholds.model_copy(
                update={"heart_rate_bpm": 95.5, "glucose_mg_dl": 175.25}
            ),
        }
    )
    changed = settings.model_copy(update={"flink": flink})
    t_env = batch_env(changed)
    tables = health_windows.transform(t_env, values_source(t_env, dataset, changed), changed)
    got = {name: collect(table) for name, table in zip(tables._fields, tables, strict=True)}
    expected = expected_outputs(changed, dataset)
    assert got["metrics_1min"], "the dataset has short windows"
    for name, rows in expected.items():
        assert got[name] == {rounded(r) for r in rows}, name
