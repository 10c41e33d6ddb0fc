"""Faults: rates match probabilities, each kind is what validation says, clean data is valid."""

from __future__ import annotations

import math
from collections import Counter

import orjson
import pytest

from openpipe.config import load_settings, parse_settings
from openpipe.events import FAULT_HEADER, INVALID_FAULT_KINDS, EventValidator
from simulator.engine import Simulation
from simulator.faults import Message

SETTINGS = load_settings()
START_MS = 1_767_254_400_000  # 2026-01-01T08:00:00Z, 13:30 IST
VALIDATOR = EventValidator(SETTINGS)


def simulate(settings, seconds: int, seed: int = 2) -> list[tuple[str, Message]]:
    """(family, message) for `seconds` of virtual time, late ones released at the end."""
    sim = Simulation(settings, seed, START_MS)
    out = []
    for t in range(START_MS + 1000, START_MS + seconds * 1000 + 1, 1000):
        for family, _topic, outgoing in sim.advance(t):
            out += [(family, m) for m in outgoing.messages()]
    for family, _topic, outgoing in sim.release_late():
        out += [(family, m) for m in outgoing.messages()]
    return out


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, Message]]:
    return simulate(SETTINGS, 900)


def test_every_invalid_fault_is_rejected_with_its_kind_and_clean_events_pass(
    messages: list[tuple[str, Message]],
) -> None:
    outcome = Counter()
    for family, (_key, value, ts, fault) in messages:
        verdict = VALIDATOR.validate(family, value, ts)
        if fault in INVALID_FAULT_KINDS:
            assert verdict.error_kind == fault, (fault, verdict, value[:200])
        else:
            assert verdict.ok, (fault, verdict, value[:200])
        outcome[fault] += 1
    assert outcome[None] > 40_000
    for kind in (*INVALID_FAULT_KINDS, "duplicate", "late"):
        assert outcome[kind] > 100, outcome


def test_fault_rates_match_probability_within_statistical_bounds(
    messages: list[tuple[str, Message]],
) -> None:
    for family in ("wearables", "gps"):
        faults = [m[3] for f, m in messages if f == family]
        n, p = len(faults), getattr(SETTINGS.devices, family).bad_data_probability
        observed = sum(k is not None for k in faults) / n
        assert abs(observed - p) < 4.5 * math.sqrt(p * (1 - p) / n), (family, observed)
        per_kind = Counter(k for k in faults if k is not None)
        mix = getattr(SETTINGS.devices, family).fault_mix
        total = sum(per_kind.values())
        for kind, weight in mix.items():
            q = weight / sum(mix.values())
            assert abs(per_kind[kind] / total - q) < 4.5 * math.sqrt(q * (1 - q) / total), kind


def test_duplicates_repeat_an_earlier_clean_message_byte_for_byte(
    messages: list[tuple[str, Message]],
) -> None:
    clean_before: set[bytes] = set()
    for _family, (key, value, _ts, fault) in messages:
        if fault == "duplicate":
            assert value in clean_before
            assert orjson.loads(value)["device_id"] == key
        elif fault is None:
            clean_before.add(value)


def test_late_events_are_held_past_window_and_watermark(
    messages: list[tuple[str, Message]],
) -> None:
    flink = SETTINGS.flink
    shortest = min(flink.heart_rate_window_s, flink.blood_pressure_window_s)
    for _family, (_key, value, ts, fault) in messages:
        if fault == "late":
            event_ms = VALIDATOR.validate("gps", value, -1).event or orjson.loads(value)
            sent_after = ts - _epoch_ms(event_ms["event_time"])
            assert sent_after > (flink.watermark_delay_seconds + shortest) * 1000


def test_malformed_json_is_truncated_clean_json(messages: list[tuple[str, Message]]) -> None:
    for _family, (_key, value, _ts, fault) in messages:
        if fault == "malformed_json":
            head = b'{"schema_version":1,"event_id":"'
            assert head.startswith(value[: len(head)]), value
            assert len(value) > 0


def test_no_faults_when_probability_is_zero() -> None:
    raw = SETTINGS.model_dump()
    for family in ("wearables", "restaurants", "gps"):
        raw["devices"][family]["bad_data_probability"] = 0.0
    quiet = parse_settings(raw, environ={})
    assert all(m[3] is None for _f, m in simulate(quiet, 30))


def test_fault_mix_can_select_a_single_kind() -> None:
    raw = SETTINGS.model_dump()
    raw["devices"]["gps"]["bad_data_probability"] = 0.5
    raw["devices"]["gps"]["fault_mix"] = {"wrong_type": 1}
    only = parse_settings(raw, environ={})
    kinds = {m[3] for f, m in simulate(only, 30) if f == "gps"}
    assert kinds == {None, "wrong_type"}


def test_fault_header_name_is_the_contract_one() -> None:
    assert FAULT_HEADER == "openpipe-fault"


def _epoch_ms(text: str) -> int:
    from openpipe.events import parse_event_time

    return int(parse_event_time(text).timestamp() * 1000)


def test_restarts_with_the_same_seed_never_reuse_event_or_order_ids() -> None:
    def ids(start_ms: int) -> tuple[set[str], set[str]]:
        sim = Simulation(SETTINGS, 0, start_ms)
        events, orders = set(), set()
        for family, _topic, outgoing in sim.advance(start_ms + 120_000):
            for value in outgoing.values:
                event = orjson.loads(value)
                events.add(event["event_id"])
                if family == "restaurants":
                    orders.add(event["order_id"])
        return events, orders

    first, again, later = ids(START_MS), ids(START_MS), ids(START_MS + 7_000)
    assert first == again
    assert not first[0] & later[0]
    assert not first[1] & later[1]
