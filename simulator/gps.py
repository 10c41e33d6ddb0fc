"""GPS trackers on vehicles driving the configured routes (pure, seeded, vectorised).

Vehicles move along great-circle segments between waypoints at speeds that switch between
free flow, slow traffic and stops; heading is the bearing of the last movement; the
reported point carries Gaussian noise whose 68 % radius is the reported `accuracy_m`
(the Android `Location.getAccuracy` convention). Closed routes loop, open ones reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from openpipe.config import GpsDevices, GpsRoute
from openpipe.events import SCHEMA_VERSION
from simulator.common import EventBatch, due_before, event_times, family_rng, uuid4_strings

EARTH_RADIUS_M = 6_371_008.8
# sigma per axis = accuracy / 1.51 gives P(horizontal error <= accuracy) = 0.68.
SIGMA_PER_ACCURACY = 1.0 / 1.51
# Traffic regimes: (target speed low, high) km/h and mean dwell seconds.
REGIMES = ((0.0, 0.0, 45.0), (5.0, 20.0, 120.0), (30.0, 65.0, 300.0))
REGIME_NEXT = np.array([[0.0, 0.3, 0.7], [0.25, 0.0, 0.75], [0.35, 0.65, 0.0]])


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres between points given in degrees (array-friendly)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def bearing_deg(lat1, lon1, lat2, lon2):
    """Initial great-circle bearing in [0, 360) from point 1 to point 2 (degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    y = np.sin(dl) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.degrees(np.arctan2(y, x)) % 360.0


@dataclass(frozen=True)
class RouteGeometry:
    """A route's waypoints as unit vectors with cumulative great-circle distances."""

    route_id: str
    city: str
    vectors: np.ndarray  # (k, 3)
    cumulative_m: np.ndarray  # (k,)
    loops: bool

    @classmethod
    def from_config(cls, route_id: str, route: GpsRoute) -> RouteGeometry:
        pts = np.radians(np.array(route.waypoints, dtype=float))
        vectors = np.stack(
            [
                np.cos(pts[:, 0]) * np.cos(pts[:, 1]),
                np.cos(pts[:, 0]) * np.sin(pts[:, 1]),
                np.sin(pts[:, 0]),
            ],
            axis=1,
        )
        lat, lon = np.degrees(pts[:, 0]), np.degrees(pts[:, 1])
        legs = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
        loops = bool(haversine_m(lat[0], lon[0], lat[-1], lon[-1]) < 50.0)
        return cls(route_id, route.city, vectors, np.concatenate([[0.0], np.cumsum(legs)]), loops)

    @property
    def length_m(self) -> float:
        return float(self.cumulative_m[-1])

    def position(self, along_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees) at distances `along_m` from the route start."""
        along = np.clip(along_m, 0.0, self.length_m)
        leg = np.clip(np.searchsorted(self.cumulative_m, along, side="right") - 1, 0, None)
        leg = np.minimum(leg, len(self.cumulative_m) - 2)
        a, b = self.vectors[leg], self.vectors[leg + 1]
        span = self.cumulative_m[leg + 1] - self.cumulative_m[leg]
        frac = np.where(span > 0, (along - self.cumulative_m[leg]) / np.maximum(span, 1e-9), 0.0)
        omega = np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0))
        sin_omega = np.sin(omega)
        safe = sin_omega > 1e-12
        wa = np.where(safe, np.sin((1 - frac) * omega) / np.where(safe, sin_omega, 1), 1 - frac)
        wb = np.where(safe, np.sin(frac * omega) / np.where(safe, sin_omega, 1), frac)
        v = wa[:, None] * a + wb[:, None] * b
        lat = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
        return lat, np.degrees(np.arctan2(v[:, 1], v[:, 0]))


class GpsFleet:
    """All simulated vehicles; `generate` returns the fixes due in a time window."""

    family = "gps"
    device_type = "gps_tracker"

    def __init__(
        self, config: GpsDevices, routes: dict[str, GpsRoute], seed: int, start_ms: int
    ) -> None:
        self._config = config
        self._rng = family_rng(seed, self.family, "model")
        self._id_rng = family_rng(seed, self.family, f"ids@{start_ms}")
        self.routes = [RouteGeometry.from_config(name, r) for name, r in routes.items()]
        self._route_names = np.array([r.route_id for r in self.routes])
        self._route_cities = np.array([r.city for r in self.routes])
        self.rate_multiplier = 1.0
        self._state: dict[str, np.ndarray] = {}
        self.device_ids: list[str] = []
        self.vehicle_ids: list[str] = []
        self._next_number = 0
        self.add(config.count, start_ms)

    @property
    def count(self) -> int:
        return len(self.device_ids)

    @property
    def interval_ms(self) -> int:
        return max(1, round(self._config.interval_s * 1000 / self.rate_multiplier))

    def add(self, n: int, now_ms: int) -> None:
        """Put `n` new vehicles on random routes at random places."""
        if n <= 0:
            return
        rng = self._rng
        route = rng.integers(0, len(self.routes), n)
        lengths = np.array([r.length_m for r in self.routes])[route]
        regime = rng.choice(3, size=n, p=[0.15, 0.25, 0.6])
        state = {
            "route": route,
            "along": rng.random(n) * lengths,
            "direction": np.where(rng.random(n) < 0.5, 1.0, -1.0),
            "regime": regime,
            "regime_until": now_ms + rng.exponential(60_000, n),
            "speed": np.zeros(n),
            "target": np.zeros(n),
            "heading": np.full(n, np.nan),
            "accuracy_base": rng.uniform(3.0, 9.0, n),
            "due": now_ms + (rng.random(n) * self.interval_ms).astype(np.int64),
            "moved_at": np.full(n, float(now_ms)),
        }
        state["target"] = self._targets(regime)
        state["speed"] = state["target"].copy()
        self._state = (
            state
            if not self._state
            else {k: np.concatenate([self._state[k], state[k]]) for k in self._state}
        )
        numbers = range(self._next_number, self._next_number + n)
        self.device_ids += [f"gps-{i:05d}" for i in numbers]
        self.vehicle_ids += [f"veh-{i:05d}" for i in numbers]
        self._next_number += n
        self._device_array = np.array(self.device_ids)
        self._vehicle_array = np.array(self.vehicle_ids)

    def remove(self, n: int) -> None:
        """Retire the `n` most recently added vehicles."""
        keep = max(0, self.count - n)
        self._state = {k: v[:keep] for k, v in self._state.items()}
        del self.device_ids[keep:], self.vehicle_ids[keep:]
        self._device_array = self._device_array[:keep]
        self._vehicle_array = self._vehicle_array[:keep]

    def _targets(self, regime: np.ndarray) -> np.ndarray:
        low = np.array([r[0] for r in REGIMES])[regime]
        high = np.array([r[1] for r in REGIMES])[regime]
        return self._rng.uniform(low, high)

    def _position(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self._state
        lat, lon = np.empty(len(idx)), np.empty(len(idx))
        for k, route in enumerate(self.routes):
            m = s["route"][idx] == k
            if m.any():
                lat[m], lon[m] = route.position(s["along"][idx[m]])
        return lat, lon

    def step(self, idx: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Move vehicles `idx` to times `t`; return true and reported positions and speeds."""
        s, rng = self._state, self._rng
        dt = np.maximum(t - s["moved_at"][idx], 0) / 1000.0
        expired = s["regime_until"][idx] <= t
        switch = idx[expired]
        if len(switch):
            probs = REGIME_NEXT[s["regime"][switch]]
            draws = rng.random(len(switch))[:, None] > np.cumsum(probs, axis=1)
            new = np.minimum(draws.sum(axis=1), 2)
            s["regime"][switch] = new
            dwell = np.array([r[2] for r in REGIMES])[new]
            s["regime_until"][switch] = t[expired] + rng.exponential(dwell) * 1000
            s["target"][switch] = self._targets(new)
        before = s["speed"][idx]
        # Speed relaxes towards the regime's target over ~8 s, with a little jitter.
        speed = before + (s["target"][idx] - before) * (1 - np.exp(-dt / 8.0))
        speed = np.clip(speed + rng.normal(0, 1.0, len(idx)) * (s["target"][idx] > 0), 0, 120)
        distance = (before + speed) / 2 / 3.6 * dt
        old_lat, old_lon = self._position(idx)
        along = s["along"][idx] + s["direction"][idx] * distance
        lengths = np.array([r.length_m for r in self.routes])[s["route"][idx]]
        loops = np.array([r.loops for r in self.routes])[s["route"][idx]]
        past_end, before_start = along > lengths, along < 0
        along = np.where(loops & past_end, along - lengths, along)
        along = np.where(loops & before_start, along + lengths, along)
        bounce = ~loops & (past_end | before_start)
        along = np.where(~loops & past_end, 2 * lengths - along, along)
        along = np.where(~loops & before_start, -along, along)
        s["direction"][idx] = np.where(bounce, -s["direction"][idx], s["direction"][idx])
        s["along"][idx], s["speed"][idx], s["moved_at"][idx] = along, speed, t
        lat, lon = self._position(idx)
        moved = haversine_m(old_lat, old_lon, lat, lon) > 0.5
        heading = np.where(moved, bearing_deg(old_lat, old_lon, lat, lon), s["heading"][idx])
        # A vehicle that has never moved faces along its direction of travel.
        heading = np.where(
            np.isnan(heading), np.where(s["direction"][idx] > 0, 0.0, 180.0), heading
        )
        s["heading"][idx] = heading
        accuracy = s["accuracy_base"][idx] * rng.lognormal(0, 0.3, len(idx))
        sigma = accuracy * SIGMA_PER_ACCURACY
        north, east = rng.normal(0, 1, (2, len(idx))) * sigma
        noisy_lat = lat + np.degrees(north / EARTH_RADIUS_M)
        noisy_lon = lon + np.degrees(east / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
        return {
            "true_lat": lat,
            "true_lon": lon,
            "lat": noisy_lat,
            "lon": noisy_lon,
            "speed_kmh": speed,
            "heading_deg": heading,
            "accuracy_m": accuracy,
        }

    def generate(self, t0_ms: int, t1_ms: int) -> EventBatch:
        """Fixes with event time before `t1_ms`, sorted by time."""
        idx, times = due_before(self._state["due"], self.interval_ms, t1_ms)
        order = np.argsort(times, kind="stable")
        idx, times = idx[order], times[order]
        # A device due twice in one window must move twice, in order.
        fixes = {k: np.empty(len(idx)) for k in ("lat", "lon", "speed_kmh", "heading_deg")}
        fixes["accuracy_m"] = np.empty(len(idx))
        remaining = np.arange(len(idx))
        while len(remaining):
            _, first = np.unique(idx[remaining], return_index=True)
            now = remaining[first]
            moved = self.step(idx[now], times[now])
            for k in fixes:
                fixes[k][now] = moved[k]
            remaining = np.setdiff1d(remaining, now, assume_unique=True)
        routes = self._state["route"][idx]
        ids = uuid4_strings(self._id_rng, len(idx)).tolist()
        dev = self._device_array[idx].tolist()
        dumps = orjson.dumps
        values = [
            dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": e,
                    "event_time": t,
                    "device_type": "gps_tracker",
                    "device_id": d,
                    "vehicle_id": v,
                    "route_id": r,
                    "city": c,
                    "lat": la,
                    "lon": lo,
                    "speed_kmh": sp,
                    "heading_deg": hd,
                    "accuracy_m": ac,
                }
            )
            for e, t, d, v, r, c, la, lo, sp, hd, ac in zip(
                ids,
                event_times(times).tolist(),
                dev,
                self._vehicle_array[idx].tolist(),
                self._route_names[routes].tolist(),
                self._route_cities[routes].tolist(),
                np.round(fixes["lat"], 6).tolist(),
                np.round(fixes["lon"], 6).tolist(),
                np.round(fixes["speed_kmh"], 1).tolist(),
                (np.round(fixes["heading_deg"], 1) % 360.0).tolist(),
                np.round(fixes["accuracy_m"], 1).tolist(),
                strict=True,
            )
        ]
        return EventBatch(times.tolist(), dev, values)
