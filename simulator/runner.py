"""The main loop: advance the simulation window by window and hand messages to a publisher."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from openpipe.events import FAMILIES
from simulator.engine import Output, Simulation
from simulator.faults import Outgoing
from simulator.stats import SimulatorStats

log = logging.getLogger(__name__)
REALTIME_TICK_MS = 100
VIRTUAL_TICK_MS = 1000


class Publisher(Protocol):
    def send(self, family: str, topic: str, outgoing: Outgoing) -> None: ...
    def wait(self, seconds: float) -> None: ...
    def close(self, timeout: float = 30.0) -> int: ...


@dataclass(frozen=True, slots=True)
class RunPlan:
    """When to run: a virtual period as fast as possible, or real time until stopped."""

    start_ms: int
    end_ms: int | None
    virtual: bool

    @property
    def tick_ms(self) -> int:
        return VIRTUAL_TICK_MS if self.virtual else REALTIME_TICK_MS


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _emit(
    batches: list[Output],
    publisher: Publisher,
    stats: SimulatorStats,
    sim: Simulation,
) -> None:
    for family, topic, outgoing in batches:
        if len(outgoing):
            publisher.send(family, topic, outgoing)
            stats.count_batch(family, outgoing.fault_counts(), len(outgoing))
    for family in FAMILIES:
        state = sim.fleets[family]
        stats.devices[family] = state.count
        stats.rate_multipliers[family] = state.rate_multiplier
    stats.virtual_time_ms = sim.now_ms


def run_simulation(
    sim: Simulation,
    publisher: Publisher,
    stats: SimulatorStats,
    plan: RunPlan,
    stop: threading.Event,
) -> int:
    """Run until the plan ends or `stop` is set; flush the publisher; return undelivered count."""
    tick = plan.tick_ms
    if plan.virtual:
        assert plan.end_ms is not None, "a virtual run needs an end"
        t = plan.start_ms
        while t < plan.end_ms and not stop.is_set():
            t = min(t + tick, plan.end_ms)
            _emit(sim.advance(t), publisher, stats, sim)
        if not stop.is_set():
            # The period is over: late messages still held back go out now, in hold order.
            _emit(sim.release_late(), publisher, stats, sim)
    else:
        next_tick = plan.start_ms + tick
        while not stop.is_set():
            wall = now_ms()
            if wall < next_tick:
                publisher.wait((next_tick - wall) / 1000)
                continue
            t = wall if plan.end_ms is None else min(wall, plan.end_ms)
            _emit(sim.advance(t), publisher, stats, sim)
            if plan.end_ms is not None and t >= plan.end_ms:
                break
            next_tick = t + tick
    undelivered = publisher.close()
    log.info(
        "stopped: produced %s, delivered %s, failed %s, undelivered %d",
        dict(stats.produced),
        dict(stats.delivered),
        dict(stats.failed),
        undelivered,
    )
    return undelivered
