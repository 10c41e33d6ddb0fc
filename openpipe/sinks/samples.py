"""Deterministic sample messages for sink tests and benchmarks: valid events and poison.

Each poison message is paired with the dead-letter kind the sink must file it under.
"""

from __future__ import annotations

import random
import uuid

import orjson

from openpipe.events import ERROR_KINDS, format_event_time
from openpipe.sinks.rows import UNSTORABLE

POISON_KINDS = (*ERROR_KINDS, UNSTORABLE)


def wearable_event(rng: random.Random, time_ms: int, device: int | None = None) -> dict:
    """A valid wearable event measured at `time_ms` (epoch milliseconds)."""
    device = rng.randrange(200) if device is None else device
    metric = rng.choice(("heart_rate", "heart_rate", "heart_rate", "blood_pressure", "blood_sugar"))
    event = {
        "schema_version": 1,
        # The time is mixed in so that runs at other times never reuse an event_id (the
        # sinks keep one row per event_id, across topics and runs).
        "event_id": str(uuid.UUID(int=rng.getrandbits(128) ^ time_ms, version=4)),
        "event_time": format_event_time(time_ms),
        "device_type": "wearable",
        "device_id": f"wearable-{device:04d}",
        "patient_id": f"patient-{device:04d}",
        "metric": metric,
    }
    if metric == "heart_rate":
        event["heart_rate_bpm"] = round(rng.uniform(50, 140), 1)
    elif metric == "blood_pressure":
        event["systolic_mmhg"] = rng.randint(100, 170)
        event["diastolic_mmhg"] = rng.randint(60, 95)
    else:
        event["glucose_mg_dl"] = round(rng.uniform(70, 250), 1)
    return event


def encode(event: dict) -> bytes:
    """The Kafka value of an event."""
    return orjson.dumps(event)


def poison_wearables(rng: random.Random, time_ms: int) -> list[tuple[str, bytes | None]]:
    """One message per dead-letter kind a wearable sink must produce, as (kind, value)."""

    def variant(**changes: object) -> bytes:
        event = wearable_event(rng, time_ms)
        event.update(changes)
        return encode({k: v for k, v in event.items() if v is not _DROP})

    base = wearable_event(rng, time_ms)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    heart = {"metric": "heart_rate", "heart_rate_bpm": 80}
    return [
        ("malformed_json", encode(base)[:-5]),
        ("missing_field", variant(patient_id=_DROP)),
        ("wrong_type", variant(**heart, device_id=42)),
        ("null_value", variant(patient_id=None)),
        ("out_of_range", variant(**heart | {"heart_rate_bpm": 900})),
        ("future_timestamp", variant(event_time=format_event_time(time_ms + 3_600_000))),
        ("stale_timestamp", variant(event_time=format_event_time(time_ms - 90_000_000))),
        ("not_utf8", b'{"device_id": "\xff\xfe"}'),
        ("too_deep", variant(extra=deep)),
        ("too_large", variant(padding="x" * (1024 * 1024 + 10))),
        ("non_finite_number", encode(base).replace(b'"device_type"', b'"nan":NaN,"device_type"')),
        ("tombstone", None),
        ("not_an_object", b"[1, 2, 3]"),
        ("unknown_value", variant(metric="blood_oxygen")),
        ("wrong_device_type", variant(device_type="gps_tracker")),
        ("bad_event_id", variant(event_id="not-a-uuid")),
        ("bad_timestamp", variant(event_time="yesterday at noon")),
        ("unstorable_value", variant(patient_id="patient\x00nul")),
    ]


class _Drop:
    def __repr__(self) -> str:
        return "<drop>"


_DROP = _Drop()
