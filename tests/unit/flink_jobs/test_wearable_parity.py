"""The Flink job's decoder (jvm/flink-wearables) must accept exactly what the sinks accept.

Every message below goes through the job's parse function and validity predicate on a
local Flink and through `flink_jobs.reference.accepted` (`openpipe.events` plus the sinks'
NUL rule); the two sets of accepted messages must be equal. The cases aim where a Java
parser and orjson/Python could differ: event_time offsets and time parts, each kind of
bad string in each string field, Python's notion of whitespace, numbers, nesting, bytes
that are not JSON or UTF-8, and thousands of random mutations.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC

import orjson
import pytest
from flink_table_helpers import batch_env, ms, source_row, values_source
from pyflink.table import DataTypes
from pyflink.table.expressions import col

from flink_jobs import health_sql
from flink_jobs.reference import accepted, wearable_event
from openpipe.events import EventValidator, format_event_time, parse_event_time

SENT_MS = ms(30)
PY_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
)
STRING_FIELDS = ("event_id", "event_time", "device_type", "device_id", "patient_id", "metric")


def _clean() -> dict:
    return wearable_event(
        "parity", "blood_pressure", SENT_MS, systolic_mmhg=128.5, diastolic_mmhg=81
    )


def _offsets() -> list[bytes]:
    """Every offset from -23:59 to +23:59 and the time parts just past each limit."""
    out = []
    for sign in "+-":
        for hours in range(24):
            for minutes in range(60):
                event = {
                    **_clean(),
                    "event_time": f"2025-03-01T12:00:30.123{sign}{hours:02d}:{minutes:02d}",
                }
                out.append(orjson.dumps(event))
    for text in [
        "2025-03-01T12:00:30+00:60",
        "2025-03-01T12:00:30-05:60",
        "2025-03-01T12:00:30+24:00",
        "2025-03-01T12:00:30-24:00",
        "2025-03-01T12:00:60Z",
        "2025-03-01T12:00:60.500+05:30",
        "2025-03-01T11:59:60Z",
        "2025-03-01T12:60:00Z",
        "2025-03-01T24:00:00Z",
        "2025-02-29T12:00:30Z",
        "2024-02-29T12:00:30Z",
        "2025-13-01T12:00:30Z",
        "2025-03-01T12:00:30.Z",
        "2025-03-01T12:00:30.1234567890Z",
        "2025-03-01T12:00:30.123456789Z",
        "2025-03-01t12:00:30z",
        "2025-03-01T12:00:30+0530",
        "2025-03-01 12:00:30Z",
        "\u0662025-03-01T12:00:30Z",
        "2025-03-01T12:00:30",
    ]:
        out.append(orjson.dumps({**_clean(), "event_time": text}))
    return out


def _with_raw(field: str, raw: bytes) -> bytes:
    """The clean event with one string field replaced by raw JSON text."""
    value = orjson.dumps(_clean())
    old = orjson.dumps(_clean()[field])
    return value.replace(b":" + old, b":" + raw, 1)


BAD_STRINGS = {
    "lone high surrogate": b'"\\ud800"',
    "lone high surrogate inside": b'"ab\\ud800cd"',
    "high surrogate at the end": b'"ab\\udbff"',
    "high then a non-surrogate escape": b'"\\ud800\\u0041"',
    "lone low surrogate": b'"\\udc00"',
    "low before high": b'"\\udc00\\ud800"',
    "two highs": b'"\\ud800\\ud800"',
    "invalid UTF-8 byte": b'"ab\xffcd"',
    "UTF-8 encoded surrogate": b'"\xed\xa0\x80"',
    "overlong UTF-8": b'"\xc0\xaf"',
    "truncated UTF-8": b'"ab\xe2\x82"',
    "above U+10FFFF": b'"\xf4\x90\x80\x80"',
    "raw control character": b'"ab\x01cd"',
    "bad escape": b'"ab\\xcd"',
}
GOOD_STRINGS = {
    "surrogate pair": b'"ab\\ud83d\\ude00"',
    "raw astral character": '"ab\U0001f600"'.encode(),
    "replacement character": '"ab\ufffd"'.encode(),
    "escaped NUL": b'"ab\\u0000"',
    "DEL": b'"ab\x7f"',
    "zero-width space only": '"\u200b"'.encode(),
}


#: What ends a run of plain string bytes, put at every place of a 17-byte device_id: the
#: decoder scans strings eight bytes at a time, so each lands in each lane of a word.
LANE_BYTES = (
    b'"',
    b"\\n",
    b"\\q",
    b"\x00",
    b"\x01",
    b"\x1f",
    b" ",
    b"\x7f",
    "\u00e9".encode(),
    b"\xff",
)


def _lanes() -> list[bytes]:
    return [
        _with_raw("device_id", b'"' + b"x" * at + special + b"y" * (16 - at) + b'"')
        for special in LANE_BYTES
        for at in range(17)
    ]


def _strings() -> list[bytes]:
    out = _lanes()
    for field in STRING_FIELDS:
        for raw in (*BAD_STRINGS.values(), *GOOD_STRINGS.values()):
            out.append(_with_raw(field, raw))
    for raw in BAD_STRINGS.values():
        out.append(orjson.dumps(_clean())[:-1] + b',"extra":' + raw + b"}")
        out.append(orjson.dumps(_clean())[:-1] + b"," + raw + b":1}")
    for space in PY_SPACES:
        for field in ("device_id", "patient_id"):
            out.append(orjson.dumps({**_clean(), field: space * 2}))
            out.append(orjson.dumps({**_clean(), field: space + "x"}))
    return out


ODD_VALUES: list[object] = [
    None, True, False, 0, 1, -1, 1.0, 24.9, 25, 250, 250.0001, 100.5, 1e308, 10**30, 2**64,
    2**64 - 1, -(2**63) - 1, "", " ", "95", "x\u0000", [], {}, [[[]]], "heart_rate",
    "blood_pressure", "blood_sugar", "wearable", "5F0C6A3E-2B7D-4C1E-9A8F-0123456789AB",
    "5f0c6a3e-2b7d-4c1e-9a8f-0123456789ab\n", "5f0c6a3e2b7d4c1e9a8f0123456789ab",
    "2025-03-01T12:00:30Z", "2025-03-01T12:05:31Z", "2025-02-28T12:00:29.999Z",
]  # fmt: skip


def _mutation(rng: random.Random) -> bytes:
    event = _clean()
    event.update(
        rng.choice(
            [
                {},
                {"metric": "heart_rate", "heart_rate_bpm": 71.5},
                {"metric": "blood_sugar", "glucose_mg_dl": 140},
            ]
        )
    )
    for _ in range(rng.randint(1, 3)):
        names = list(event)
        move = rng.random()
        if move < 0.4:
            event[rng.choice(names)] = rng.choice(ODD_VALUES)
        elif move < 0.5:
            del event[rng.choice(names)]
        elif move < 0.7:
            field = rng.choice(
                ["extra", "heart_rate_bpm", "glucose_mg_dl", "systolic_mmhg", "diastolic_mmhg"]
            )
            event[field] = rng.choice(ODD_VALUES)
        else:
            name = rng.choice(names)
            value = event[name]
            if isinstance(value, int | float) and not isinstance(value, bool):
                event[name] = rng.choice([value + rng.choice([-1e-9, 1e-9]), rng.randint(-5, 800)])
    raw = json.dumps(event, separators=(",", ":")).encode()  # orjson refuses 10**30
    if rng.random() < 0.15:  # byte-level damage
        pos = rng.randrange(len(raw))
        raw = raw[:pos] + bytes([rng.randrange(256)]) + raw[pos + rng.randint(0, 1) :]
    if rng.random() < 0.05:  # a duplicate key: the later value wins
        raw = raw[:-1] + b',"patient_id":' + json.dumps(rng.choice(ODD_VALUES)).encode() + b"}"
    return raw


def _odd_bytes() -> list[bytes | None]:
    clean = orjson.dumps(_clean())
    deep = b'{"deep":' + b"[" * 31 + b"]" * 31 + b"," + clean[1:]
    return [
        None,
        b"",
        b"null",
        b"[1]",
        b"\xef\xbb\xbf" + clean,
        clean + b" trailing",
        clean + b" \r\n\t",
        b" \n" + clean,
        clean.replace(b"128.5", b"NaN"),
        clean.replace(b"128.5", b"1e400"),
        clean.replace(b"128.5", b"1.285e2"),
        clean.replace(b"128.5", b"128.50000000000000000001"),
        clean.replace(b"128.5", b"0128.5"),
        clean.replace(b"128.5", b"128."),
        clean.replace(b"128.5", b"+128.5"),
        clean.replace(b"81", b"81E0"),
        clean.replace(b'"schema_version":1', b'"schema_version":1.0'),
        clean.replace(b'"schema_version":1', b'"schema_version":1e0'),
        clean.replace(b'"schema_version":1', b'"schema_version":true'),
        clean.replace(b'"schema_version":1', b'"schema_version":01'),
        clean.replace(b'"device_type":"wearable"', b'"device_type":"wear\\u0061ble"'),
        clean.replace(
            b'"metric":"blood_pressure"', b'"metric":"blood_pressure","metric":"heart_rate"'
        ),
        deep,
        b'{"deep":' + b"[" * 32 + b"]" * 32 + b"," + clean[1:],
        clean[:-1] + b',"pad":"' + b"x" * 1_048_600 + b'"}',
    ]


def _time_edges() -> list[tuple[bytes, int]]:
    """Events on and around the edges of the validity window, down to the microsecond."""
    out = []
    sent = SENT_MS + 123
    for edge_ms in (300_000, -86_400_000):
        for nudge_us in (-1500, -1000, -999, -1, 0, 1, 999, 1000, 1001, 1500):
            micros = (sent + edge_ms) * 1000 + nudge_us
            whole, frac = divmod(micros, 1_000_000)
            text = format_event_time(whole * 1000)[:19] + f".{frac:06d}Z"
            out.append((orjson.dumps({**_clean(), "event_time": text}), sent))
    return out


def _send_time(value: bytes | None) -> int:
    """The UTC instant of the value's own event_time when it has a valid one, else SENT_MS."""
    try:
        return int(parse_event_time(orjson.loads(value)["event_time"]).timestamp() * 1000)
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return SENT_MS


def _messages() -> list[tuple[bytes | None, int]]:
    rng = random.Random(14)
    values = _offsets() + _strings() + _odd_bytes() + [_mutation(rng) for _ in range(3000)]
    # Each case is sent at its own event time, so only the case itself can make it invalid.
    return [(value, _send_time(value)) for value in values] + _time_edges()


def _flink_accepted(settings, messages: list[tuple[bytes | None, int]]) -> set[int]:
    """Indexes of the messages the job's decoder and validity predicate let through."""
    t_env = batch_env(settings)
    schema = DataTypes.ROW(
        [
            DataTypes.FIELD("n", DataTypes.INT()),
            DataTypes.FIELD("payload", DataTypes.BYTES()),
            DataTypes.FIELD("kafka_ts", DataTypes.TIMESTAMP_LTZ(3)),
        ]
    )
    rows = [(n, *source_row(value, kafka_ms)) for n, (value, kafka_ms) in enumerate(messages)]
    t_env.create_temporary_view("parity_raw", t_env.from_elements(rows, schema))
    rules = health_sql.wearable_rules(settings).replace("'", "''")
    decoded = ", ".join(f"p.{name}" for name, _ in health_sql.DECODED_COLUMNS)
    table = t_env.sql_query(
        f"SELECT n FROM (SELECT n, {decoded}, kafka_ts FROM (SELECT n, "
        f"{health_sql.PARSE_FUNCTION}(payload, '{rules}') AS p, kafka_ts FROM parity_raw)) "
        f"WHERE {health_sql.valid_wearable_sql(settings)}"
    )
    with table.execute().collect() as results:
        return {row[0] for row in results}


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes | None, int]]:
    return _messages()


@pytest.fixture(scope="module")
def flink_accepted(settings, messages) -> set[int]:
    return _flink_accepted(settings, messages)


def _python_accepted(settings, messages) -> set[int]:
    validator = EventValidator(settings)
    return {
        n for n, (value, kafka_ms) in enumerate(messages) if accepted(validator, value, kafka_ms)
    }


def test_the_job_accepts_exactly_what_the_sinks_accept(settings, messages, flink_accepted):
    python = _python_accepted(settings, messages)
    assert python and len(python) < len(messages), "the cases reach both verdicts"
    differ = sorted(python ^ flink_accepted)
    assert not differ, [
        (("python" if n in python else "flink") + " only", messages[n]) for n in differ[:10]
    ]


def test_every_offset_from_minus_to_plus_23_59_is_accepted(messages, flink_accepted):
    offsets = {n for n, (value, _) in enumerate(messages[: 2 * 24 * 60])}
    assert offsets <= flink_accepted


def test_minute_and_second_60_and_bad_strings_are_refused(messages, flink_accepted):
    refused = [
        n
        for n, (value, _) in enumerate(messages)
        if value is not None
        and (
            b"+00:60" in value
            or b"-05:60" in value
            or b":60Z" in value
            or any(bad in value for bad in BAD_STRINGS.values())
        )
    ]
    assert len(refused) > len(STRING_FIELDS) * len(BAD_STRINGS)
    assert not set(refused) & flink_accepted


def test_accepted_readings_come_out_as_the_reference_reads_them(settings):
    t_env = batch_env(settings)
    event = wearable_event(
        "parity",
        "blood_pressure",
        SENT_MS,
        # Upper case, and the top bit of both halves set: the bits come out as signed longs.
        event_id="FEDCBA98-7654-4321-8FED-CBA987654321",
        systolic_mmhg=120,
        diastolic_mmhg=80.25,
    )
    source = values_source(t_env, [(orjson.dumps(event), SENT_MS)], settings)
    names = [name for name, _ in health_sql.DECODED_COLUMNS]
    # PyFlink cannot hand a TIMESTAMP_LTZ to Python: read event_ts as UTC wall time.
    columns = [
        col(n).cast(DataTypes.TIMESTAMP(3)).alias(n) if n == "event_ts" else col(n) for n in names
    ]
    with source.select(*columns).execute().collect() as results:
        row = next(iter(results))
    decoded = dict(zip(names, row, strict=True))
    assert decoded["valid"] is True
    assert (decoded["device_id"], decoded["patient_id"], decoded["metric"]) == (
        "parity",
        "patient-parity",
        "blood_pressure",
    )
    assert (decoded["reading_1"], decoded["reading_2"]) == (120.0, 80.25)
    bits = (decoded["event_id_high"] % 2**64) << 64 | decoded["event_id_low"] % 2**64
    assert bits == uuid.UUID(event["event_id"]).int
    assert (
        format_event_time(int(decoded["event_ts"].replace(tzinfo=UTC).timestamp() * 1000))
        == event["event_time"]
    )
