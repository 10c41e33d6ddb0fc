"""The Flink benchmark's backlog ends before now: Kafka 4 refuses records stamped > 1 h ahead."""

from __future__ import annotations

import pytest
from flink_bench import backlog_readings

from openpipe.config import load_settings

NOW_MS = 1_795_000_123_456  # not on a window boundary


@pytest.mark.parametrize("events", [100, 20_000])
def test_the_backlog_and_its_flush_are_stamped_before_now(events):
    settings = _small_fleet(2)  # 20,000 readings take 12 h of this fleet's clock
    messages, flush_ms = backlog_readings(settings, events, NOW_MS)
    times = [ts for _, _, ts in messages]
    assert len(messages) == events
    assert max(times) < flush_ms <= NOW_MS
    assert (flush_ms - 3_600_000) % 600_000 == 0
    assert flush_ms - max(times) <= 3_600_000 + 600_000  # the flush closes the last window


def _small_fleet(count: int):
    settings = load_settings()
    wearables = settings.devices.wearables.model_copy(update={"count": count})
    devices = settings.devices.model_copy(update={"wearables": wearables})
    return settings.model_copy(update={"devices": devices})


def test_a_short_backlog_starts_six_hours_back():
    settings = load_settings()
    messages, _ = backlog_readings(settings, 100, NOW_MS)
    start = (NOW_MS // 600_000) * 600_000 - 6 * 3_600_000
    assert start <= min(ts for _, _, ts in messages) < start + 600_000
