"""Probe events are judged by the project's own validator exactly as the harness expects."""

import orjson
import pytest
from system_probe import DUPLICATE, FAMILIES, OUT_OF_RANGE, VALID, probe_event, probe_kind

from openpipe.events import EventValidator

NOW_MS = 1_795_000_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_probe_passes_validation(settings, family):
    event = probe_event(family, "run1", 5, NOW_MS)
    verdict = EventValidator(settings).validate(family, orjson.dumps(event), NOW_MS)
    assert verdict.ok, verdict


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_probe_is_out_of_range(settings, family):
    event = probe_event(family, "run1", 5, NOW_MS, bad=True)
    verdict = EventValidator(settings).validate(family, orjson.dumps(event), NOW_MS)
    assert not verdict.ok and verdict.error_kind == "out_of_range"


def test_probe_devices_are_labelled_with_the_run():
    assert probe_event("gps", "abc", 3, NOW_MS)["device_id"].startswith("probe-abc-")


def test_probe_kinds_mix_mostly_valid():
    kinds = [probe_kind(n) for n in range(1800)]
    assert kinds.count(VALID) > 1700
    assert kinds.count(DUPLICATE) == 39
    assert kinds.count(OUT_OF_RANGE) == 45
    assert probe_kind(0) == VALID  # nothing to re-send yet
