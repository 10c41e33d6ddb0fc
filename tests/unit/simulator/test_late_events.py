"""Late events of a `--duration` run are late: sent after their window and the watermark.

A late message must follow events of its family at least `window + watermark delay` newer
than itself (then the Flink watermark has passed its window's end). Messages still held
back when the run ends are due after the end; they are dropped, not sent early.
"""

from __future__ import annotations

import threading

import orjson
import pytest

from openpipe.config import load_settings
from openpipe.events import parse_event_time
from simulator.engine import Simulation
from simulator.faults import Outgoing
from simulator.runner import RunPlan, run_simulation
from simulator.stats import SimulatorStats

SETTINGS = load_settings()
START_MS = 1_767_254_400_000  # 2026-01-01T08:00:00Z
RUN_S = 600


class Collected:
    """A publisher that keeps (family, event_time ms, fault) in send order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str | None]] = []

    def send(self, family: str, topic: str, outgoing: Outgoing) -> None:
        for _key, value, _ts, fault in outgoing.messages():
            if fault in (None, "late"):
                moment = parse_event_time(orjson.loads(value)["event_time"])
                self.sent.append((family, int(moment.timestamp() * 1000), fault))

    def wait(self, seconds: float) -> None:
        pass

    def close(self, timeout: float = 30.0) -> int:
        return 0


def _window_end_ms(event_ms: int, window_s: int) -> int:
    return (event_ms // (window_s * 1000) + 1) * window_s * 1000


@pytest.mark.parametrize("seed", [11, 12])
def test_a_duration_run_sends_no_late_event_before_its_window_closed(seed: int) -> None:
    publisher = Collected()
    plan = RunPlan(start_ms=START_MS, end_ms=START_MS + RUN_S * 1000, virtual=True)
    sim = Simulation(SETTINGS, seed, START_MS)
    run_simulation(sim, publisher, SimulatorStats(), plan, threading.Event())
    flink = SETTINGS.flink
    # The shortest window a late event can be in: the check is loose for blood sugar.
    window_s = min(flink.heart_rate_window_s, flink.blood_pressure_window_s)
    newest: dict[str, int] = {}
    late = early = 0
    for family, event_ms, fault in publisher.sent:
        if fault is None:
            newest[family] = max(newest.get(family, 0), event_ms)
            continue
        late += 1
        closes_ms = _window_end_ms(event_ms, window_s) + flink.watermark_delay_seconds * 1000
        early += newest.get(family, 0) < closes_ms
    assert late > 50, "the run produced late events to check"
    assert early == 0, f"{early} of {late} 'late' events were sent before their window closed"
