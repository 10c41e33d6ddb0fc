"""`EventValidator.parse` (the sinks' msgspec fast path) must judge exactly as `validate`.

Every message below goes through both doors: when `validate` accepts, what `parse`
returns makes the same table row as `validate`'s event; when it rejects, `parse` raises
the same kind and detail. The mutations aim at the places the two could drift apart: types, bounds, blank
and odd strings, unknown and duplicate keys, nesting, bytes that are not JSON or UTF-8.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
import pytest

from openpipe.config import parse_settings
from openpipe.events import FAMILIES, EventValidator, InvalidEvent, parse_event_time
from openpipe.sinks import SINKS
from openpipe.sinks.samples import poison_wearables
from tests.unit.openpipe.test_events import CLEAN, NOW_MS, SETTINGS, VALIDATOR

ODD_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    1.5,
    -0.0,
    359.999,
    360,
    1e308,
    10**30,
    "",
    " ",
    "\t\n",
    "\u2003",
    "\u00a0x",
    "x",
    "x\u0000",
    "\ud7ff",
    "heart_rate",
    "blood_pressure",
    "blood_sugar",
    "wearable",
    "restaurant_pos",
    "gps_tracker",
    "paid",
    "upi",
    "closed",
    "5F0C6A3E-2B7D-4C1E-9A8F-0123456789AB",
    "5f0c6a3e2b7d4c1e9a8f0123456789ab",
    "5f0c6a3e-2b7d-4c1e-9a8f-0123456789ab\n",
    "2026-01-01T00:00:00Z",
    "2026-01-01t00:00:00z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00.1234567891Z",
    "2026-02-30T00:00:00Z",
    "2025-12-31T23:59:59.999+05:30",
    [],
    [{}],
    {},
    [[[[[]]]]],
]


def _both(family: str, value: bytes | None, ts: int = NOW_MS) -> None:
    verdict = VALIDATOR.validate(family, value, ts)
    if verdict.ok:
        row = _row(family, VALIDATOR.parse(family, value, ts))
        walked = {**verdict.event, "event_time": parse_event_time(verdict.event["event_time"])}
        assert row == _row(family, SimpleNamespace(**walked)), value
    else:
        with pytest.raises(InvalidEvent) as caught:
            VALIDATOR.parse(family, value, ts)
        assert (caught.value.kind, caught.value.detail) == (
            verdict.error_kind,
            verdict.error_detail,
        ), value


def _row(family: str, event: object) -> tuple:
    """The stored row (or the storage refusal) the event becomes."""
    spec = next(spec for spec in SINKS.values() if spec.family == family)
    try:
        return spec.raw_row(event, ("t", 0, 0, None, None))
    except InvalidEvent as refusal:
        return (refusal.kind,)


def _mutations(rng: random.Random, family: str) -> bytes:
    event = copy.deepcopy(CLEAN[family])
    if family == "wearables":
        event.update(rng.choice([{"metric": "heart_rate", "heart_rate_bpm": 71.5}, {}]))
    for _ in range(rng.randint(1, 3)):
        names = list(event)
        move = rng.random()
        if move < 0.35:
            event[rng.choice(names)] = rng.choice(ODD_VALUES)
        elif move < 0.45:
            del event[rng.choice(names)]
        elif move < 0.55:
            event[rng.choice(["extra", "heart_rate_bpm", "glucose_mg_dl", "systolic_mmhg"])] = (
                rng.choice(ODD_VALUES)
            )
        elif move < 0.7 and family == "restaurants":
            items = event.get("items")
            item = rng.choice(items) if isinstance(items, list) and items else None
            if isinstance(item, dict):
                item[rng.choice(["dish_code", "quantity", "unit_price_inr", "x"])] = rng.choice(
                    ODD_VALUES
                )
        elif move < 0.85:
            name = rng.choice(names)
            value = event[name]
            if isinstance(value, int | float) and not isinstance(value, bool):
                event[name] = rng.choice(
                    [value + rng.choice([-1e-9, 1e-9]), rng.randint(-5, 400), rng.uniform(-5, 400)]
                )
        else:
            event = {**event, **{rng.choice(names): rng.choice(ODD_VALUES)}}
    raw = json.dumps(event, separators=(",", ":")).encode()  # orjson refuses 10**30
    if rng.random() < 0.15:  # byte-level damage
        pos = rng.randrange(len(raw))
        raw = raw[:pos] + bytes([rng.randrange(256)]) + raw[pos + rng.randint(0, 1) :]
    if rng.random() < 0.05:  # a duplicate key: the later value wins in both
        raw = raw[:-1] + b',"device_id":' + json.dumps(rng.choice(ODD_VALUES)).encode() + b"}"
    return raw


@pytest.mark.parametrize("family", FAMILIES)
def test_clean_event_parses_to_the_same_fields(family: str) -> None:
    _both(family, orjson.dumps(CLEAN[family]))


@pytest.mark.parametrize("family", FAMILIES)
def test_thousands_of_mutations_get_the_same_verdict(family: str) -> None:
    rng = random.Random(f"parse-{family}")
    outcomes = set()
    for _ in range(4000):
        raw = _mutations(rng, family)
        _both(family, raw)
        outcomes.add(VALIDATOR.validate(family, raw, NOW_MS).error_kind)
    assert None in outcomes and len(outcomes) > 8, "the mutations reach valid and many faults"


def test_every_wearable_poison_kind_gets_the_same_verdict() -> None:
    for _kind, value in poison_wearables(random.Random(5), NOW_MS):
        _both("wearables", value)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"\xef\xbb\xbf" + orjson.dumps(CLEAN["gps"]),  # a UTF-8 byte order mark
        orjson.dumps(CLEAN["gps"]) + b" trailing",
        orjson.dumps(CLEAN["gps"]).replace(b'"Mumbai"', b'"Mum\\ud800bai"'),
        orjson.dumps(CLEAN["gps"]).replace(b"19.0176", b"NaN"),
        orjson.dumps(CLEAN["gps"]).replace(b"19.0176", b"1e400"),
        b"[" * 40 + b"]" * 40,
        b'{"deep":' + b"[" * 40 + b"]" * 40 + b"," + orjson.dumps(CLEAN["gps"])[1:],
        b'{"deep":' + b"[" * 20 + b"]" * 20 + b"," + orjson.dumps(CLEAN["gps"])[1:],
    ],
)
def test_odd_bytes_get_the_same_verdict(raw: bytes | None) -> None:
    _both("gps", raw)


@pytest.mark.parametrize("ts", [0, -1, NOW_MS - 301_000, NOW_MS + 86_400_000, NOW_MS - 1])
def test_time_window_gets_the_same_verdict(ts: int) -> None:
    for family in FAMILIES:
        _both(family, orjson.dumps(CLEAN[family]), ts)


@pytest.mark.parametrize("edge_ms", [300_000, -86_400_000])  # max_future_seconds, max_age_hours
@pytest.mark.parametrize("nudge_us", [-1500, -1000, -999, -1, 0, 1, 999, 1000, 1001, 1500])
def test_time_window_edges_get_the_same_verdict(edge_ms: int, nudge_us: int) -> None:
    sent_ms = 1_767_225_600_000 + 123
    moment = datetime.fromtimestamp(0, UTC) + timedelta(
        milliseconds=sent_ms + edge_ms, microseconds=nudge_us
    )
    event = {**CLEAN["gps"], "event_time": moment.isoformat().replace("+00:00", "Z")}
    _both("gps", orjson.dumps(event), sent_ms)


def test_a_valid_event_the_struct_refuses_is_still_accepted() -> None:
    # An out-of-range value in another metric's field: the struct refuses it, the
    # walk (which only looks at the metric's own fields) accepts, and its verdict stands.
    event = {**CLEAN["wearables"], "glucose_mg_dl": 5000}
    parsed = VALIDATOR.parse("wearables", orjson.dumps(event), NOW_MS)
    assert parsed.systolic_mmhg == 128.5 and parsed.metric == "blood_pressure"


def _validator(**validation: object) -> EventValidator:
    raw = SETTINGS.model_dump()
    raw["validation"].update(validation)
    return EventValidator(parse_settings(raw, environ={}))


def test_shallow_depth_limit_still_walks_every_event() -> None:
    strict = _validator(max_json_depth=2)
    raw = orjson.dumps(CLEAN["restaurants"])  # object -> items -> order line: 3 levels
    with pytest.raises(InvalidEvent) as caught:
        strict.parse("restaurants", raw, NOW_MS)
    assert caught.value.kind == "too_deep"
    assert strict.parse("gps", orjson.dumps(CLEAN["gps"]), NOW_MS).city == "Mumbai"


def test_unknown_family_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        VALIDATOR.parse("toasters", b"{}", NOW_MS)


def test_settings_ranges_reach_the_struct() -> None:
    narrow = _validator(speed_kmh=[0, 50])
    fast = {**CLEAN["gps"], "speed_kmh": 80}
    assert VALIDATOR.parse("gps", orjson.dumps(fast), NOW_MS).speed_kmh == 80
    with pytest.raises(InvalidEvent, match="speed_kmh"):
        narrow.parse("gps", orjson.dumps(fast), NOW_MS)
    assert SETTINGS.validation.speed_kmh.high > 50


# --- The event_time and string rules shared with the Flink job (module docstring) ---------


def _offsets() -> list[str]:
    """Every offset from -23:59 to +23:59, minute by minute."""
    return [
        f"{sign}{hours:02d}:{minutes:02d}"
        for sign in "+-"
        for hours in range(24)
        for minutes in range(60)
    ]


def _with_time(text: str) -> bytes:
    return orjson.dumps({**CLEAN["gps"], "event_time": text})


def test_every_offset_from_minus_to_plus_23_59_is_valid_in_both_doors() -> None:
    for offset in _offsets():
        raw = _with_time(f"2026-01-01T00:00:00.123{offset}")
        assert VALIDATOR.validate("gps", raw, 0).ok, offset
        _both("gps", raw, 0)  # 0: no time window, the format alone decides


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00+00:60",  # offset minute 60 (Python would read +01:00)
        "2026-01-01T00:00:00-00:60",
        "2026-01-01T00:00:00+05:99",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00-24:00",
        "2026-01-01T00:00:00+99:00",
        "2026-01-01T00:00:00+0530",
        "2026-01-01T00:00:00+05",
        "2026-01-01T23:59:60Z",  # a leap second
        "2026-01-01T23:59:60.500+05:30",
        "2026-01-01T00:60:00Z",
        "2026-01-01T24:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01t00:00:00z",
    ],
)
def test_out_of_range_time_parts_are_bad_timestamps_in_both_doors(text: str) -> None:
    for ts in (0, NOW_MS):
        assert VALIDATOR.validate("gps", _with_time(text), ts).error_kind == "bad_timestamp"
        _both("gps", _with_time(text), ts)


def _clean_with(field_json: bytes) -> bytes:
    """The clean GPS event with its city (a string field) replaced by raw JSON text."""
    return orjson.dumps(CLEAN["gps"]).replace(b'"Mumbai"', field_json)


BAD_STRINGS = {
    "lone high surrogate": _clean_with(b'"\\ud800"'),
    "lone high surrogate inside text": _clean_with(b'"Mum\\ud800bai"'),
    "lone high surrogate at the end": _clean_with(b'"Mumbai\\udbff"'),
    "high surrogate then a non-surrogate escape": _clean_with(b'"\\ud800\\u0041"'),
    "lone low surrogate": _clean_with(b'"\\udc00"'),
    "low before high": _clean_with(b'"\\udc00\\ud800"'),
    "two highs": _clean_with(b'"\\ud800\\ud800"'),
    "surrogate in an unknown field": orjson.dumps(CLEAN["gps"])[:-1] + b',"x":"\\ud800"}',
    "surrogate in a key": orjson.dumps(CLEAN["gps"])[:-1] + b',"\\ud800":1}',
    "surrogate in device_id": orjson.dumps(CLEAN["gps"]).replace(b'"gps-00001"', b'"gps-\\udfff"'),
    "invalid UTF-8 byte": _clean_with(b'"Mum\xffbai"'),
    "UTF-8 encoded surrogate (CESU-8)": _clean_with(b'"\xed\xa0\x80"'),
    "overlong UTF-8": _clean_with(b'"\xc0\xaf"'),
    "truncated UTF-8 sequence": _clean_with(b'"Mum\xe2\x82"'),
}


@pytest.mark.parametrize("name", BAD_STRINGS)
def test_each_kind_of_bad_string_is_not_utf8_in_both_doors(name: str) -> None:
    raw = BAD_STRINGS[name]
    verdict = VALIDATOR.validate("gps", raw, NOW_MS)
    assert verdict.error_kind == "not_utf8", (name, verdict)
    _both("gps", raw)


def test_a_lone_surrogate_is_named_by_its_field() -> None:
    raw = orjson.dumps(CLEAN["wearables"]).replace(b'"patient-000001"', b'"\\ud800"')
    verdict = VALIDATOR.validate("wearables", raw, NOW_MS)
    assert verdict.error_kind == "not_utf8" and verdict.error_detail.startswith("patient_id ")
    nested = orjson.dumps(CLEAN["restaurants"]).replace(b'"D001"', b'"D\\udc01"')
    verdict = VALIDATOR.validate("restaurants", nested, NOW_MS)
    assert verdict.error_kind == "not_utf8" and verdict.error_detail.startswith(
        "items[0].dish_code"
    )


def test_a_valid_surrogate_pair_is_text() -> None:
    raw = _clean_with(b'"Mumbai \\ud83d\\ude95"')
    assert VALIDATOR.parse("gps", raw, NOW_MS).city == "Mumbai \U0001f695"
    _both("gps", raw)
