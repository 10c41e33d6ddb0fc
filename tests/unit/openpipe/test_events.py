"""Unit tests for the event contract in openpipe/events.py."""

from __future__ import annotations

import copy

import orjson
import pytest

from openpipe.config import load_settings, parse_settings
from openpipe.events import (
    ERROR_KINDS,
    FAMILIES,
    INVALID_FAULT_KINDS,
    EventValidator,
    Verdict,
    family_for_topic,
    format_event_time,
    parse_event_time,
)

NOW_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
SETTINGS = load_settings()
VALIDATOR = EventValidator(SETTINGS)

COMMON = {
    "schema_version": 1,
    "event_id": "5f0c6a3e-2b7d-4c1e-9a8f-0123456789ab",
    "event_time": format_event_time(NOW_MS - 250),
}
CLEAN = {
    "wearables": {
        **COMMON,
        "device_type": "wearable",
        "device_id": "wear-000001",
        "patient_id": "patient-000001",
        "metric": "blood_pressure",
        "systolic_mmhg": 128.5,
        "diastolic_mmhg": 84,
    },
    "restaurants": {
        **COMMON,
        "device_type": "restaurant_pos",
        "device_id": "pos-00001",
        "restaurant_id": "rest-00001",
        "city": "Mumbai",
        "order_id": "ord-00001-00000001",
        "table_number": 4,
        "items": [{"dish_code": "D001", "quantity": 2, "unit_price_inr": 120.0}],
        "total_inr": 240.0,
        "order_status": "closed",
        "payment_status": "paid",
        "payment_method": None,
    },
    "gps": {
        **COMMON,
        "device_type": "gps_tracker",
        "device_id": "gps-00001",
        "vehicle_id": "veh-00001",
        "route_id": "mumbai_western_express",
        "city": "Mumbai",
        "lat": 19.0176,
        "lon": 72.8562,
        "speed_kmh": 0,
        "heading_deg": 359.9,
        "accuracy_m": 4.5,
    },
}


def _judge(family: str, event: object, ts: int = NOW_MS) -> Verdict:
    return VALIDATOR.validate(family, orjson.dumps(event), ts)


def _mutated(family: str, **changes: object) -> dict:
    event = copy.deepcopy(CLEAN[family])
    for name, value in changes.items():
        if value is KeyError:
            del event[name]
        else:
            event[name] = value
    return event


@pytest.mark.parametrize("family", FAMILIES)
def test_clean_event_is_accepted(family: str) -> None:
    verdict = _judge(family, CLEAN[family])
    assert verdict.ok, verdict
    assert verdict.event == CLEAN[family]
    assert verdict.error_detail is None


def test_fractional_heart_rate_is_kept_as_is() -> None:
    event = _mutated("wearables", metric="heart_rate", heart_rate_bpm=100.5)
    verdict = _judge("wearables", event)
    assert verdict.ok and verdict.event["heart_rate_bpm"] == 100.5


@pytest.mark.parametrize(
    ("family", "changes", "kind", "named"),
    [
        ("wearables", {"patient_id": KeyError}, "missing_field", "patient_id"),
        ("wearables", {"diastolic_mmhg": KeyError}, "missing_field", "diastolic_mmhg"),
        ("gps", {"lat": None}, "null_value", "lat"),
        ("restaurants", {"order_status": None}, "null_value", "order_status"),
        ("gps", {"speed_kmh": "42.0"}, "wrong_type", "speed_kmh"),
        ("gps", {"lat": True}, "wrong_type", "lat"),
        ("restaurants", {"table_number": 4.0}, "wrong_type", "table_number"),
        ("restaurants", {"items": "D001x2"}, "wrong_type", "items"),
        ("wearables", {"event_time": 1767225600}, "wrong_type", "event_time"),
        ("wearables", {"systolic_mmhg": 400}, "out_of_range", "systolic_mmhg"),
        ("wearables", {"systolic_mmhg": 80, "diastolic_mmhg": 90}, "out_of_range", "systolic"),
        ("gps", {"lat": 91.0}, "out_of_range", "lat"),
        ("gps", {"heading_deg": 360}, "out_of_range", "heading_deg"),
        ("restaurants", {"table_number": 0}, "out_of_range", "table_number"),
        ("wearables", {"metric": "steps"}, "unknown_value", "metric"),
        ("restaurants", {"payment_method": "cheque"}, "unknown_value", "payment_method"),
        ("wearables", {"schema_version": 2}, "unknown_value", "schema_version"),
        ("gps", {"device_type": "wearable"}, "wrong_device_type", "device_type"),
        ("gps", {"event_id": "not-a-uuid"}, "bad_event_id", "event_id"),
        ("gps", {"event_time": "2026-01-01 00:00:00"}, "bad_timestamp", "event_time"),
        ("gps", {"event_time": "2026-01-01T00:00:00"}, "bad_timestamp", "event_time"),
        ("gps", {"device_id": ""}, "missing_field", "device_id"),
    ],
)
def test_invalid_event_is_rejected_naming_the_field(
    family: str, changes: dict, kind: str, named: str
) -> None:
    verdict = _judge(family, _mutated(family, **changes))
    assert (verdict.ok, verdict.error_kind) == (False, kind), verdict
    assert verdict.event is None
    assert named in verdict.error_detail


def test_bad_order_line_is_rejected_naming_the_line() -> None:
    items = [{"dish_code": "D001", "quantity": 0, "unit_price_inr": 10}]
    verdict = _judge("restaurants", _mutated("restaurants", items=items))
    assert verdict.error_kind == "out_of_range"
    assert "items[0].quantity" in verdict.error_detail


def test_timestamp_window_is_judged_against_the_message_timestamp() -> None:
    v = SETTINGS.validation
    ahead = _mutated(
        "gps", event_time=format_event_time(NOW_MS + v.max_future_seconds * 1000 + 1000)
    )
    behind = _mutated("gps", event_time=format_event_time(NOW_MS - v.max_age_hours * 3_600_000 - 1))
    assert _judge("gps", ahead).error_kind == "future_timestamp"
    assert _judge("gps", behind).error_kind == "stale_timestamp"
    # A replay of old history is valid when its message timestamp is from that time.
    assert _judge("gps", behind, ts=NOW_MS - v.max_age_hours * 3_600_000).ok
    # An unknown message timestamp (-1) skips the window check rather than guessing.
    assert _judge("gps", ahead, ts=-1).ok


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, "tombstone"),
        (b"", "malformed_json"),
        (b'{"schema_version": 1, "event_id": "5f0c', "malformed_json"),
        (b'{"a": "\xff"}', "not_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b'{"heart_rate_bpm": NaN}', "non_finite_number"),
        (b'{"heart_rate_bpm": 1e400}', "non_finite_number"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "too_deep"),
        (b"[" * 2000 + b"]" * 2000, "too_deep"),
    ],
)
def test_undecodable_values_get_specific_kinds(raw: bytes | None, kind: str) -> None:
    assert VALIDATOR.validate("wearables", raw, NOW_MS).error_kind == kind


def test_oversized_value_is_rejected_before_parsing() -> None:
    limit = SETTINGS.validation.max_message_bytes
    raw = b'{"pad": "' + b"x" * limit + b'"}'
    verdict = VALIDATOR.validate("gps", raw, NOW_MS)
    assert verdict.error_kind == "too_large"
    assert str(limit) in verdict.error_detail


def test_ranges_come_from_settings() -> None:
    raw = load_settings().model_dump()
    raw["validation"]["heart_rate_bpm"] = [25, 90]
    strict = EventValidator(parse_settings(raw, environ={}))
    event = orjson.dumps(_mutated("wearables", metric="heart_rate", heart_rate_bpm=95))
    assert VALIDATOR.validate("wearables", event, NOW_MS).ok
    assert strict.validate("wearables", event, NOW_MS).error_kind == "out_of_range"


def test_every_error_kind_is_distinct_and_covers_invalid_faults() -> None:
    assert len(set(ERROR_KINDS)) == len(ERROR_KINDS)
    assert set(INVALID_FAULT_KINDS) <= set(ERROR_KINDS)
    assert "duplicate" not in ERROR_KINDS and "late" not in ERROR_KINDS


def test_event_time_round_trips() -> None:
    text = format_event_time(NOW_MS)
    assert text == "2026-01-01T00:00:00.123Z"
    assert int(parse_event_time(text).timestamp() * 1000) == NOW_MS


def test_family_for_topic_maps_configured_topics() -> None:
    assert family_for_topic(SETTINGS, SETTINGS.kafka.topics.gps) == "gps"
    with pytest.raises(KeyError, match="not a raw event topic"):
        family_for_topic(SETTINGS, SETTINGS.kafka.topics.health_alerts)


def test_unknown_family_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        VALIDATOR.validate("toasters", b"{}", NOW_MS)
