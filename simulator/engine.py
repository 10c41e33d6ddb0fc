"""The event scheduler: advances all fleets through time windows and applies faults.

No threads per device and no I/O: `advance(t1)` asks every fleet for the events due
before `t1` (vectorised per family) and returns ready-to-send messages per topic.
Control calls (device counts, rates) take the same lock, so they land between windows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from openpipe.config import Settings
from openpipe.events import FAMILIES
from simulator.faults import FaultInjector, Outgoing
from simulator.gps import GpsFleet
from simulator.restaurants import RestaurantFleet
from simulator.wearables import WearableFleet

log = logging.getLogger(__name__)
MAX_DEVICES_PER_FAMILY = 1_000_000
#: (family, topic, messages) for one window.
Output = tuple[str, str, Outgoing]
MAX_RATE_MULTIPLIER = 1000.0


@dataclass(frozen=True, slots=True)
class FamilyState:
    """What the dashboard shows and the control API returns for one family."""

    family: str
    topic: str
    devices: int
    rate_multiplier: float
    held_back_late: int


class Simulation:
    """All device families plus their fault injectors, driven window by window."""

    def __init__(
        self, settings: Settings, seed: int, start_ms: int, rate_multiplier: float = 1.0
    ) -> None:
        devices = settings.devices
        self.fleets = {
            "wearables": WearableFleet(devices.wearables, seed, start_ms),
            "restaurants": RestaurantFleet(devices.restaurants, seed, start_ms),
            "gps": GpsFleet(devices.gps, settings.gps_routes, seed, start_ms),
        }
        self.injectors = {
            family: FaultInjector(family, getattr(devices, family), settings, seed)
            for family in FAMILIES
        }
        self.topics = {family: getattr(settings.kafka.topics, family) for family in FAMILIES}
        self.now_ms = start_ms
        self._lock = threading.Lock()
        for family in FAMILIES:
            self.fleets[family].rate_multiplier = rate_multiplier

    def advance(self, t1_ms: int) -> list[Output]:
        """Generate everything due in [now, t1_ms) as (family, topic, messages)."""
        with self._lock:
            out = []
            for family in FAMILIES:
                batch = self.fleets[family].generate(self.now_ms, t1_ms)
                out.append(
                    (family, self.topics[family], self.injectors[family].apply(batch, t1_ms))
                )
            self.now_ms = max(self.now_ms, t1_ms)
            return out

    def release_late(self) -> list[Output]:
        """At the end of a virtual run: the late messages due by now; the rest are dropped.

        A message still held is due after the run's end. Sent now, it would follow the
        run's newest events by less than its window plus the watermark delay, so its
        window would still be open: labelled late, it would not be. It is dropped instead
        (never sent, so no count of produced events includes it) and logged.
        """
        with self._lock:
            out = [
                (
                    f,
                    self.topics[f],
                    Outgoing([], [], [], self.injectors[f].release(self.now_ms + 1)),
                )
                for f in FAMILIES
            ]
            dropped = {f: self.injectors[f].drop_held() for f in FAMILIES}
        if any(dropped.values()):
            log.info("run ended: dropped late messages not yet due %s", dropped)
        return out

    def state(self, family: str) -> FamilyState:
        """Device count and rate of one family."""
        fleet = self._fleet(family)
        return FamilyState(
            family,
            self.topics[family],
            fleet.count,
            fleet.rate_multiplier,
            self.injectors[family].held_back,
        )

    def set_devices(self, family: str, count: int) -> FamilyState:
        """Add or retire devices so that `family` has `count` of them."""
        if not 0 <= count <= MAX_DEVICES_PER_FAMILY:
            raise ValueError(f"count must be in [0, {MAX_DEVICES_PER_FAMILY}], got {count}")
        with self._lock:
            fleet = self._fleet(family)
            if count > fleet.count:
                fleet.add(count - fleet.count, self.now_ms)
            elif count < fleet.count:
                fleet.remove(fleet.count - count)
        return self.state(family)

    def set_rate(self, family: str, multiplier: float) -> FamilyState:
        """Scale how often `family`'s devices send (1.0 = the configured intervals)."""
        if not 0 < multiplier <= MAX_RATE_MULTIPLIER:
            raise ValueError(f"rate multiplier must be in (0, {MAX_RATE_MULTIPLIER}]")
        with self._lock:
            self._fleet(family).rate_multiplier = float(multiplier)
        return self.state(family)

    def _fleet(self, family: str):
        try:
            return self.fleets[family]
        except KeyError:
            raise KeyError(f"unknown family {family!r}; expected one of {FAMILIES}") from None
