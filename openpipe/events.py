"""The event contract (docs/architecture.md §3): families, fault kinds and validation of raw Kafka values.

`EventValidator` is the one place that decides whether a message is a valid event. The
sinks, the Flink job's reference model and the simulator's tests all call it; it never
looks at the `openpipe-fault` header (that is ground truth for scoring only).

It has two doors onto the same rules. `validate` walks the parsed JSON check by check and
says exactly what is wrong. `parse`, the sinks' hot path, lets msgspec decode and check a
typed struct built from the same settings in one C pass; only a message that pass
refuses is walked by `validate`, which then decides (and names the fault). The fast pass
may be stricter than the walk, never looser; tests/unit/openpipe/test_event_parse.py holds
the two to the same verdicts over every fault kind and thousands of mutations.

Two rules the Flink job applies too (flink_jobs), so both consumers judge alike:

- `event_time` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS`, hours 00-23, minutes and
  seconds 00-59 (a leap second `:60` is refused), an optional fraction of 1-9 digits,
  then `Z` or an offset from -23:59 to +23:59 (offset hours 00-23, minutes 00-59), and
  a real calendar date. Anything else (`+00:60`, `+24:00`, `23:59:60`, `2026-02-30`, a
  lowercase `t` or `z`) is `bad_timestamp`.
- Every string is Unicode text UTF-8 can carry. Bytes that are not UTF-8, and a JSON
  `\\uXXXX` escape that leaves a lone UTF-16 surrogate (`"\\ud800"`, `"\\udc00"`, a low
  before a high), anywhere in the message, are `not_utf8`; the detail names the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import msgspec
import orjson

from openpipe.config import FAULT_KINDS, Range, Settings

FAMILIES: tuple[str, ...] = ("wearables", "restaurants", "gps")
SCHEMA_VERSION = 1
FAULT_HEADER = "openpipe-fault"
#: Fault kinds whose messages are still valid events (sinks keep them; duplicates once).
VALID_FAULT_KINDS: tuple[str, ...] = ("duplicate", "late")
#: Fault kinds that validation must reject, each with the same name as its error kind.
INVALID_FAULT_KINDS: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k not in VALID_FAULT_KINDS)
ERROR_KINDS: tuple[str, ...] = (
    *INVALID_FAULT_KINDS,
    "not_utf8",
    "too_deep",
    "too_large",
    "non_finite_number",
    "tombstone",
    "not_an_object",
    "unknown_value",
    "wrong_device_type",
    "bad_event_id",
    "bad_timestamp",
)

DEVICE_TYPES: dict[str, str] = {
    "wearables": "wearable",
    "restaurants": "restaurant_pos",
    "gps": "gps_tracker",
}
METRIC_FIELDS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("heart_rate_bpm",),
    "blood_pressure": ("systolic_mmhg", "diastolic_mmhg"),
    "blood_sugar": ("glucose_mg_dl",),
}
ORDER_STATUSES: tuple[str, ...] = ("placed", "served", "closed", "cancelled")
PAYMENT_STATUSES: tuple[str, ...] = ("pending", "paid", "failed", "refunded")
PAYMENT_METHODS: tuple[str, ...] = ("upi", "card", "cash")
COMMON_FIELDS: tuple[str, ...] = (
    "schema_version",
    "event_id",
    "event_time",
    "device_type",
    "device_id",
)
#: Required top-level fields per family, in the order events carry them.
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "wearables": (*COMMON_FIELDS, "patient_id", "metric"),
    "restaurants": (
        *COMMON_FIELDS,
        "restaurant_id",
        "city",
        "order_id",
        "table_number",
        "items",
        "total_inr",
        "order_status",
        "payment_status",
        "payment_method",
    ),
    "gps": (
        *COMMON_FIELDS,
        "vehicle_id",
        "route_id",
        "city",
        "lat",
        "lon",
        "speed_kmh",
        "heading_deg",
        "accuracy_m",
    ),
}
ITEM_FIELDS: tuple[str, ...] = ("dish_code", "quantity", "unit_price_inr")
#: Fields that may legitimately be JSON null.
NULLABLE_FIELDS: frozenset[str] = frozenset({"payment_method"})

_UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The module docstring's event_time rule; `datetime.fromisoformat` then checks the date.
_RFC3339_PATTERN = (
    r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_UUID_RE = re.compile(_UUID_PATTERN)
_RFC3339_RE = re.compile(_RFC3339_PATTERN)
_LAT = Range(low=-90, high=90)
_LON = Range(low=-180, high=180)
_HEADING = Range(low=0, high=360)
_NON_NEGATIVE = Range(low=0, high=math.inf)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of validating one Kafka message."""

    event: dict | None
    error_kind: str | None
    error_detail: str | None

    @property
    def ok(self) -> bool:
        """True when the message is a valid event."""
        return self.error_kind is None


class InvalidEvent(Exception):
    """A message that goes to dead_letters: `kind` names the rule (snake_case), `detail` the field.

    Raised by `EventValidator.parse` (kinds from ERROR_KINDS) and by the sinks' row
    builders (openpipe.sinks.rows), the one exception for every refusal.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def format_event_time(epoch_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the `event_time` format producers emit."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def parse_event_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset; raise ValueError otherwise."""
    if not isinstance(text, str) or not _RFC3339_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp like 2025-01-31T12:00:00.000Z")
    return datetime.fromisoformat(text)


def family_for_topic(settings: Settings, topic: str) -> str:
    """The device family whose events a raw topic carries; KeyError for other topics."""
    for family in FAMILIES:
        if getattr(settings.kafka.topics, family) == topic:
            return family
    raise KeyError(f"topic {topic!r} is not a raw event topic; expected one of {FAMILIES}")


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when parsed JSON nests dicts/lists deeper than `limit` levels."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def decode_object(value: bytes | None, max_bytes: int, max_depth: int) -> dict:
    """The JSON object a Kafka value holds, else InvalidEvent naming what is wrong with it.

    The one envelope check of every topic (raw events and the Flink results): tombstone,
    too_large, not_utf8 (bad bytes or a lone surrogate), malformed_json, non_finite_number,
    not_an_object, too_deep; the limits are `validation.max_message_bytes` and
    `validation.max_json_depth`.
    """
    if value is None:
        raise InvalidEvent("tombstone", "message has no value (a tombstone); messages need a body")
    if len(value) > max_bytes:
        raise InvalidEvent(
            "too_large",
            f"value is {len(value)} bytes; validation.max_message_bytes is {max_bytes}",
        )
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _classify_undecodable(value, exc) from None
    if not isinstance(decoded, dict):
        raise InvalidEvent(
            "not_an_object", f"value is a JSON {type(decoded).__name__}, not an object"
        )
    # Nesting needs an opening bracket per level: most values have too few to check.
    brackets = value.count(b"{") + value.count(b"[")
    if brackets > max_depth and depth_exceeds(decoded, max_depth):
        raise InvalidEvent(
            "too_deep", f"JSON nesting exceeds validation.max_json_depth={max_depth}"
        )
    return decoded


def _classify_undecodable(value: bytes, exc: orjson.JSONDecodeError) -> InvalidEvent:
    message = str(exc)
    if "depth limit" in message:
        return InvalidEvent("too_deep", f"JSON nesting exceeds the parser limit: {message}")
    if "infinity" in message:
        return InvalidEvent("non_finite_number", f"a number overflows to infinity: {message}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return InvalidEvent("not_utf8", f"value is not UTF-8: {err}")
    try:
        lenient = json.loads(text)
    except (ValueError, RecursionError):
        return InvalidEvent("malformed_json", f"value is not valid JSON: {message}")
    # The standard library also accepts lone surrogate escapes and NaN/Infinity literals.
    where = _lone_surrogate(lenient)
    if where is not None:
        return InvalidEvent(
            "not_utf8",
            f"{where} holds a lone UTF-16 surrogate escape (like \\ud800), "
            "which is not text UTF-8 can carry",
        )
    if "surrogate" in message:  # where is unknown (say, beyond the walk's depth)
        return InvalidEvent("not_utf8", f"a string holds a lone UTF-16 surrogate: {message}")
    return InvalidEvent("non_finite_number", "value contains NaN or Infinity, which JSON forbids")


def _lone_surrogate(value: Any) -> str | None:
    """Where in parsed JSON a string (or key) holds a lone surrogate; None when none does."""
    stack: list[tuple[Any, str]] = [(value, "value")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not _encodes(node):
                return where
        elif isinstance(node, dict):
            for key, child in node.items():
                label = key if where == "value" else f"{where}.{key}"
                if not _encodes(key):
                    return "a field name" if where == "value" else f"a field name in {where}"
                stack.append((child, label))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bounded(kind: type, bounds: Range, *, open_high: bool = False) -> Any:
    """`kind` held to `bounds` the way `_within` holds it (an infinite end is no bound)."""
    meta: dict[str, float] = {}
    if math.isfinite(bounds.low):
        meta["ge"] = math.ceil(bounds.low) if kind is int else bounds.low
    if math.isfinite(bounds.high):
        high = math.floor(bounds.high) if kind is int else bounds.high
        meta["lt" if open_high else "le"] = high
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


# An identifier must hold a non-space character: msgspec checks the length, `_passes`
# the spaces (str.isspace, the same test as `_identifier`'s strip, far cheaper than a regex).
_Identifier = Annotated[str, msgspec.Meta(min_length=1)]
_Uuid = Annotated[str, msgspec.Meta(pattern=rf"^{_UUID_PATTERN}\Z")]
_Timestamp = Annotated[str, msgspec.Meta(pattern=rf"^{_RFC3339_PATTERN}\Z")]


def _measure_ranges(v: Any) -> dict[str, Range]:
    """Each measurement field of METRIC_FIELDS with its plausibility range from `validation:`."""
    return {name: getattr(v, name) for fields in METRIC_FIELDS.values() for name in fields}


def _event_types(v: Any) -> dict[str, type]:
    """One msgspec struct per family holding the checks of `EventValidator.validate`.

    What a struct cannot say (identifiers that are all spaces, a metric's own fields,
    systolic above diastolic, the time window) is checked by `EventValidator._passes`.
    Unknown fields are refused here, so `validate` judges them (and their nesting).
    """

    def family(name: str, device_type: str, fields: list[tuple]) -> type:
        common = [
            ("schema_version", Literal[SCHEMA_VERSION]),
            ("event_id", _Uuid),
            ("event_time", _Timestamp),
            ("device_type", Literal[device_type]),
            ("device_id", _Identifier),
        ]
        return msgspec.defstruct(
            name, common + fields, kw_only=True, forbid_unknown_fields=True, gc=False
        )

    item = msgspec.defstruct(
        "OrderLine",
        [
            ("dish_code", _Identifier),
            ("quantity", _bounded(int, v.quantity)),
            ("unit_price_inr", _bounded(float, v.unit_price_inr)),
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    return {
        "wearables": family(
            "WearableEvent",
            DEVICE_TYPES["wearables"],
            [
                ("patient_id", _Identifier),
                ("metric", Literal[tuple(METRIC_FIELDS)]),
                # Only the metric's own fields must be there; `_passes` checks which.
                *(
                    (name, _bounded(float, bounds) | None, None)
                    for name, bounds in _measure_ranges(v).items()
                ),
            ],
        ),
        "restaurants": family(
            "RestaurantEvent",
            DEVICE_TYPES["restaurants"],
            [
                ("restaurant_id", _Identifier),
                ("city", _Identifier),
                ("order_id", _Identifier),
                ("table_number", _bounded(int, v.table_number)),
                ("items", Annotated[list[item], msgspec.Meta(min_length=1)]),
                ("total_inr", _bounded(float, _NON_NEGATIVE)),
                ("order_status", Literal[ORDER_STATUSES]),
                ("payment_status", Literal[PAYMENT_STATUSES]),
                ("payment_method", Literal[PAYMENT_METHODS] | None),
            ],
        ),
        "gps": family(
            "GpsEvent",
            DEVICE_TYPES["gps"],
            [
                ("vehicle_id", _Identifier),
                ("route_id", _Identifier),
                ("city", _Identifier),
                ("lat", _bounded(float, _LAT)),
                ("lon", _bounded(float, _LON)),
                ("speed_kmh", _bounded(float, v.speed_kmh)),
                ("heading_deg", _bounded(float, _HEADING, open_high=True)),
                ("accuracy_m", _bounded(float, v.accuracy_m)),
            ],
        ),
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The deepest nesting a struct accepts (restaurant event -> items -> order line); with
#: unknown fields refused, a decoded event can be no deeper.
_STRUCT_DEPTH = 3


def _wearable_passes(event: Any) -> bool:
    if event.device_id.isspace() or event.patient_id.isspace():
        return False
    metric = event.metric
    if metric == "heart_rate":
        return event.heart_rate_bpm is not None
    if metric == "blood_pressure":
        systolic, diastolic = event.systolic_mmhg, event.diastolic_mmhg
        return systolic is not None and diastolic is not None and systolic > diastolic
    return event.glucose_mg_dl is not None


def _restaurant_passes(event: Any) -> bool:
    names = (event.device_id, event.restaurant_id, event.city, event.order_id)
    return not any(name.isspace() for name in names) and not any(
        item.dish_code.isspace() for item in event.items
    )


def _gps_passes(event: Any) -> bool:
    names = (event.device_id, event.vehicle_id, event.route_id, event.city)
    return not any(name.isspace() for name in names)


class EventValidator:
    """Validates raw Kafka values against docs/architecture.md §3 with ranges from `settings.validation`."""

    def __init__(self, settings: Settings) -> None:
        v = settings.validation
        self._max_bytes = v.max_message_bytes
        self._max_depth = v.max_json_depth
        self._max_future_ms = v.max_future_seconds * 1000
        self._max_age_ms = v.max_age_hours * 3_600_000
        self._metric_ranges = _measure_ranges(v)
        self._v = v
        # Per family: the struct decoder, and what the struct cannot check (False sends
        # the message to `validate`).
        passes = {
            "wearables": _wearable_passes,
            "restaurants": _restaurant_passes,
            "gps": _gps_passes,
        }
        self._fast = {
            name: (msgspec.json.Decoder(kind), passes[name])
            for name, kind in _event_types(v).items()
        }
        self._window: tuple[int, datetime, datetime] = (0, _EPOCH, _EPOCH)  # `_in_window`'s

    def parse(self, family: str, value: bytes | None, kafka_timestamp_ms: int) -> Any:
        """The event of a valid message, one attribute per field; else InvalidEvent.

        The sinks' hot path: one msgspec pass decides for almost every message. A message
        it refuses, or that could nest too deep for it to judge, is walked by `validate`,
        whose verdict stands. `event_time` comes back parsed (an aware datetime); of a
        wearable event only its metric's measurement fields are meaningful.
        """
        fast = self._fast.get(family)
        if fast is None:
            raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
        decoder, passes = fast
        if (
            value is not None
            and len(value) <= self._max_bytes
            and (self._max_depth >= _STRUCT_DEPTH or not self._brackets_exceed(value))
        ):
            try:
                event = decoder.decode(value)
                moment = datetime.fromisoformat(event.event_time)  # the struct checked the shape
            except (msgspec.DecodeError, ValueError):  # ValidationError, bad UTF-8, bad date
                pass
            else:
                if passes(event) and (
                    kafka_timestamp_ms <= 0 or self._in_window(moment, kafka_timestamp_ms)
                ):
                    event.event_time = moment
                    return event
        verdict = self.validate(family, value, kafka_timestamp_ms)
        if not verdict.ok:
            raise InvalidEvent(verdict.error_kind, verdict.error_detail)
        # Valid, though the stricter struct refused it (say, an unknown field).
        event = SimpleNamespace(**verdict.event)
        event.event_time = datetime.fromisoformat(event.event_time)
        return event

    def _in_window(self, moment: datetime, kafka_timestamp_ms: int) -> bool:
        """`_check_time`'s window as two datetime comparisons (bounds kept per timestamp).

        Each bound sits 1 ms inside the walk's, so the walk's float rounding of
        `timestamp()` can never make it refuse what this accepts.
        """
        window = self._window  # (timestamp, earliest, latest); one attribute: thread-safe
        if window[0] != kafka_timestamp_ms:
            sent = _EPOCH + timedelta(milliseconds=kafka_timestamp_ms)
            window = (
                kafka_timestamp_ms,
                sent - timedelta(milliseconds=self._max_age_ms - 1),
                sent + timedelta(milliseconds=self._max_future_ms - 1),
            )
            self._window = window
        return window[1] <= moment <= window[2]

    def _brackets_exceed(self, value: bytes) -> bool:
        return value.count(b"{") + value.count(b"[") > self._max_depth

    def validate(self, family: str, value: bytes | None, kafka_timestamp_ms: int) -> Verdict:
        """Judge one message of `family`; time checks are skipped when the timestamp is <= 0."""
        if family not in DEVICE_TYPES:
            raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
        try:
            event = decode_object(value, self._max_bytes, self._max_depth)
            self._check_fields(family, event)
            self._check_time(event, kafka_timestamp_ms)
        except InvalidEvent as bad:
            return Verdict(None, bad.kind, bad.detail)
        return Verdict(event, None, None)

    def _check_fields(self, family: str, event: dict) -> None:
        for name in FAMILY_FIELDS[family]:
            _present(event, name)
        if type(event["schema_version"]) is not int:
            raise _wrong_type("schema_version", event["schema_version"], "an integer")
        if event["schema_version"] != SCHEMA_VERSION:
            raise InvalidEvent(
                "unknown_value",
                f"schema_version is {event['schema_version']}; only {SCHEMA_VERSION} is known",
            )
        event_id = _string(event, "event_id")
        if not _UUID_RE.fullmatch(event_id):
            raise InvalidEvent("bad_event_id", f"event_id {event_id[:64]!r} is not a UUID")
        _string(event, "event_time")
        device_type = _string(event, "device_type")
        if device_type != DEVICE_TYPES[family]:
            raise InvalidEvent(
                "wrong_device_type",
                f"device_type is {device_type[:64]!r}; {family} events carry "
                f"{DEVICE_TYPES[family]!r}",
            )
        _identifier(event, "device_id")
        getattr(self, f"_check_{family}")(event)

    def _check_wearables(self, event: dict) -> None:
        _identifier(event, "patient_id")
        metric = _enum(event, "metric", METRIC_FIELDS)
        for name in METRIC_FIELDS[metric]:
            _present(event, name)
            _number(event, name, self._metric_ranges[name])
        if metric == "blood_pressure" and event["systolic_mmhg"] <= event["diastolic_mmhg"]:
            raise InvalidEvent(
                "out_of_range",
                f"systolic_mmhg ({event['systolic_mmhg']}) must exceed diastolic_mmhg "
                f"({event['diastolic_mmhg']})",
            )

    def _check_restaurants(self, event: dict) -> None:
        v = self._v
        for name in ("restaurant_id", "city", "order_id"):
            _identifier(event, name)
        _integer(event, "table_number", v.table_number)
        items = event["items"]
        if not isinstance(items, list):
            raise _wrong_type("items", items, "a list of order lines")
        if not items:
            raise InvalidEvent("missing_field", "items is empty; an order has at least one line")
        for index, item in enumerate(items):
            where = f"items[{index}]"
            if item is None:
                raise InvalidEvent("null_value", f"{where} is null")
            if not isinstance(item, dict):
                raise _wrong_type(where, item, "an object")
            for name in ITEM_FIELDS:
                _present(item, name, where)
            _identifier(item, "dish_code", where)
            _integer(item, "quantity", v.quantity, where)
            _number(item, "unit_price_inr", v.unit_price_inr, where)
        _number(event, "total_inr", _NON_NEGATIVE)
        _enum(event, "order_status", ORDER_STATUSES)
        _enum(event, "payment_status", PAYMENT_STATUSES)
        if event["payment_method"] is not None:
            _enum(event, "payment_method", PAYMENT_METHODS)

    def _check_gps(self, event: dict) -> None:
        v = self._v
        for name in ("vehicle_id", "route_id", "city"):
            _identifier(event, name)
        _number(event, "lat", _LAT)
        _number(event, "lon", _LON)
        _number(event, "speed_kmh", v.speed_kmh)
        _number(event, "heading_deg", _HEADING)
        if event["heading_deg"] == 360:
            raise InvalidEvent("out_of_range", "heading_deg is 360; headings lie in [0, 360)")
        _number(event, "accuracy_m", v.accuracy_m)

    def _check_time(self, event: dict, kafka_timestamp_ms: int) -> None:
        try:
            moment = parse_event_time(event["event_time"])
        except ValueError as exc:
            raise InvalidEvent("bad_timestamp", f"event_time: {exc}") from None
        if kafka_timestamp_ms <= 0:
            return
        event_ms = int(moment.timestamp() * 1000)
        ahead = event_ms - kafka_timestamp_ms
        if ahead > self._max_future_ms:
            raise InvalidEvent(
                "future_timestamp",
                f"event_time {event['event_time']} is {ahead / 1000:.0f} s after the message "
                f"timestamp; validation.max_future_seconds is {self._max_future_ms // 1000}",
            )
        if -ahead > self._max_age_ms:
            raise InvalidEvent(
                "stale_timestamp",
                f"event_time {event['event_time']} is {-ahead / 3_600_000:.1f} h before the "
                f"message timestamp; validation.max_age_hours is {self._max_age_ms // 3_600_000}",
            )


def _label(name: str, where: str | None) -> str:
    return f"{where}.{name}" if where else name


def _present(obj: dict, name: str, where: str | None = None) -> None:
    if name not in obj:
        raise InvalidEvent("missing_field", f"{_label(name, where)} is missing")
    if obj[name] is None and name not in NULLABLE_FIELDS:
        raise InvalidEvent("null_value", f"{_label(name, where)} is null")


def _wrong_type(label: str, value: Any, expected: str) -> InvalidEvent:
    return InvalidEvent("wrong_type", f"{label} is a JSON {_json_type(value)}; expected {expected}")


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, dict) else "null")


def _string(obj: dict, name: str, where: str | None = None) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise _wrong_type(_label(name, where), value, "a string")
    return value


def _identifier(obj: dict, name: str, where: str | None = None) -> str:
    value = _string(obj, name, where)
    if not value.strip():
        raise InvalidEvent("missing_field", f"{_label(name, where)} is an empty string")
    return value


def _enum(obj: dict, name: str, allowed: Any) -> str:
    value = _string(obj, name)
    if value not in allowed:
        raise InvalidEvent(
            "unknown_value",
            f"{name} is {value[:64]!r}; allowed values are {', '.join(allowed)}",
        )
    return value


def _number(obj: dict, name: str, bounds: Range, where: str | None = None) -> float:
    value = obj[name]
    kind = type(value)
    if kind is not float and kind is not int:
        raise _wrong_type(_label(name, where), value, "a number")
    return _within(value, _label(name, where), bounds)


def _integer(obj: dict, name: str, bounds: Range, where: str | None = None) -> int:
    value = obj[name]
    if type(value) is not int:
        raise _wrong_type(_label(name, where), value, "an integer")
    return _within(value, _label(name, where), bounds)


def _within(value: float, label: str, bounds: Range) -> Any:
    if not math.isfinite(value):
        raise InvalidEvent("non_finite_number", f"{label} is {value}; numbers must be finite")
    if not bounds.low <= value <= bounds.high:
        raise InvalidEvent(
            "out_of_range",
            f"{label} is {value}; the allowed range is [{bounds.low}, {bounds.high}]",
        )
    return value
