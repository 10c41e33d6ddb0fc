"""Pure mapping from Kafka messages to table rows, one function per table.

Raw topics are judged by `openpipe.events.EventValidator`; the Flink output topics
(produced by our own job) get the same envelope check (`openpipe.events.decode_object`)
plus the field checks here.
Every refusal is an `openpipe.events.InvalidEvent` (kind and detail), the one exception
that sends a message to `dead_letters`. A row a database could not store (a NUL
character in text) is refused as `unstorable_value` instead of failing the whole COPY.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from openpipe.events import InvalidEvent, decode_object

#: Kind used when a valid event holds a value PostgreSQL cannot store (text with NUL).
UNSTORABLE = "unstorable_value"


def kafka_time(timestamp_ms: int) -> datetime | None:
    """The Kafka message timestamp as an aware datetime (None when the broker gave none)."""
    if timestamp_ms <= 0:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def _text(value: Any, name: str) -> str:
    if "\x00" in value:
        raise InvalidEvent(
            UNSTORABLE, f"{name} contains a NUL character, which PostgreSQL text rejects"
        )
    return value


# Raw builders take what `EventValidator.parse` returns (one attribute per event field,
# event_time already a datetime) and `kafka`, the raw tables' last columns:
# (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, injected_fault).

# Per metric: (heart_rate_bpm, systolic_mmhg, diastolic_mmhg, glucose_mg_dl), the
# measurement columns in table order, the metric's own fields filled (METRIC_FIELDS).
_MEASURES: dict[str, Callable[[Any], tuple]] = {
    "heart_rate": lambda e: (float(e.heart_rate_bpm), None, None, None),
    "blood_pressure": lambda e: (None, float(e.systolic_mmhg), float(e.diastolic_mmhg), None),
    "blood_sugar": lambda e: (None, None, None, float(e.glucose_mg_dl)),
}


def wearable_row(event: Any, kafka: tuple) -> tuple:
    """A valid wearable event as a wearable_readings row (COPY column order).

    Only the measurement fields of the event's metric are kept; event_id stays text
    (the COPY dumper writes it as binary uuid).
    """
    metric = event.metric
    device_id, patient_id = event.device_id, event.patient_id
    if "\x00" in device_id or "\x00" in patient_id:
        _text(device_id, "device_id")
        _text(patient_id, "patient_id")
    return (
        event.event_id,
        event.event_time,
        device_id,
        patient_id,
        metric,
        *_MEASURES[metric](event),
        *kafka,
    )


_ITEMS = msgspec.json.Encoder()


def restaurant_row(event: Any, kafka: tuple) -> tuple:
    """A valid restaurant event as a restaurant_orders row (items stay JSON).

    Order lines keep the contract's fields only, whichever door the event came through.
    """
    items = event.items
    if items and isinstance(items[0], dict):  # from `validate`: drop unknown fields
        items = [
            {
                "dish_code": i["dish_code"],
                "quantity": i["quantity"],
                "unit_price_inr": float(i["unit_price_inr"]),
            }
            for i in items
        ]
    items = _ITEMS.encode(items)
    if b"\\u0000" in items:
        raise InvalidEvent(UNSTORABLE, "items contains a NUL character, which jsonb rejects")
    return (
        event.event_id,
        event.event_time,
        _text(event.device_id, "device_id"),
        _text(event.restaurant_id, "restaurant_id"),
        _text(event.city, "city"),
        _text(event.order_id, "order_id"),
        event.table_number,
        event.order_status,
        event.payment_status,
        event.payment_method,
        items,
        float(event.total_inr),
        *kafka,
    )


def gps_row(event: Any, kafka: tuple) -> tuple:
    """A valid GPS event as a gps_points row."""
    return (
        event.event_id,
        event.event_time,
        _text(event.device_id, "device_id"),
        _text(event.vehicle_id, "vehicle_id"),
        _text(event.route_id, "route_id"),
        _text(event.city, "city"),
        float(event.lat),
        float(event.lon),
        float(event.speed_kmh),
        float(event.heading_deg),
        float(event.accuracy_m),
        *kafka,
    )


# --- Flink output topics -------------------------------------------------------------


def parse_record(value: bytes | None, *, max_bytes: int, max_depth: int) -> dict:
    """The JSON object of a Flink output message, or InvalidEvent (the raw topics' check)."""
    return decode_object(value, max_bytes, max_depth)


def _field(record: dict, name: str) -> Any:
    if name not in record:
        raise InvalidEvent("missing_field", f"{name} is missing")
    if record[name] is None:
        raise InvalidEvent("null_value", f"{name} is null")
    return record[name]


def _string(record: dict, name: str) -> str:
    value = _field(record, name)
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{name} is {type(value).__name__}; expected a string")
    if not value.strip():
        raise InvalidEvent("missing_field", f"{name} is an empty string")
    return _text(value, name)


def _number(record: dict, name: str) -> float:
    value = _field(record, name)
    if type(value) not in (int, float):
        raise InvalidEvent("wrong_type", f"{name} is {type(value).__name__}; expected a number")
    if not math.isfinite(value):
        raise InvalidEvent("non_finite_number", f"{name} is {value}; numbers must be finite")
    return float(value)


def _count(record: dict, name: str) -> int:
    value = _field(record, name)
    if type(value) is not int:
        raise InvalidEvent("wrong_type", f"{name} is {type(value).__name__}; expected an integer")
    if not 0 <= value <= 2**31 - 1:
        raise InvalidEvent("out_of_range", f"{name} is {value}; expected 0..2^31-1")
    return value


def _timestamp(record: dict, name: str) -> datetime:
    text = _string(record, name)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(
            "bad_timestamp", f"{name} {text[:40]!r} is not an RFC 3339 time"
        ) from None
    # Flink's JSON format may drop the zone of a TIMESTAMP column; our windows are UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def metric_row(record: dict, topic: str, partition: int, offset: int) -> tuple:
    """A Flink window result as a health_metrics_* row; raises InvalidEvent on bad fields."""
    start, end = _timestamp(record, "window_start"), _timestamp(record, "window_end")
    if end <= start:
        raise InvalidEvent("out_of_range", f"window_end {end} is not after window_start {start}")
    return (
        start,
        end,
        _string(record, "device_id"),
        _string(record, "patient_id"),
        _string(record, "metric"),
        _count(record, "reading_count"),
        _number(record, "avg_value"),
        _number(record, "min_value"),
        _number(record, "max_value"),
        topic,
        partition,
        offset,
    )


def alert_row(record: dict, topic: str, partition: int, offset: int) -> tuple:
    """A Flink alert as a health_alerts row; raises InvalidEvent on bad fields."""
    start, end = _timestamp(record, "window_start"), _timestamp(record, "window_end")
    if end <= start:
        raise InvalidEvent("out_of_range", f"window_end {end} is not after window_start {start}")
    return (
        _timestamp(record, "alert_time"),
        start,
        end,
        _string(record, "device_id"),
        _string(record, "patient_id"),
        _string(record, "alert_type"),
        _number(record, "observed_value"),
        _number(record, "threshold"),
        _string(record, "severity"),
        topic,
        partition,
        offset,
    )


RawRowBuilder = Callable[[Any, tuple], tuple]
RecordRowBuilder = Callable[[dict, str, int, int], tuple]
