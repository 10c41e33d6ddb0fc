"""GPS model: great-circle movement at realistic speeds, noise matching accuracy_m."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import orjson
import pytest

from openpipe.config import load_settings
from simulator.gps import GpsFleet, RouteGeometry, bearing_deg, haversine_m

SETTINGS = load_settings()
START_MS = 1_767_240_000_000
INTERVAL_S = SETTINGS.devices.gps.interval_s


@pytest.fixture(scope="module")
def tracks() -> dict[str, list[dict]]:
    config = SETTINGS.devices.gps.model_copy(update={"count": 40})
    fleet = GpsFleet(config, SETTINGS.gps_routes, 3, START_MS)
    by_vehicle = defaultdict(list)
    for t in range(START_MS, START_MS + 2 * 3_600_000, 60_000):
        for value in fleet.generate(t, t + 60_000).values:
            event = orjson.loads(value)
            by_vehicle[event["vehicle_id"]].append(event)
    return by_vehicle


def _distance_to_route(lat: float, lon: float, route: RouteGeometry) -> float:
    along = np.linspace(0, route.length_m, int(route.length_m / 5) + 2)
    rlat, rlon = route.position(along)
    return float(haversine_m(lat, lon, rlat, rlon).min())


ROUTES = {name: RouteGeometry.from_config(name, r) for name, r in SETTINGS.gps_routes.items()}


def test_step_lengths_match_speed_times_interval(tracks: dict[str, list[dict]]) -> None:
    errors, noise = [], []
    for events in tracks.values():
        for a, b in itertools.pairwise(events):
            step = haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])
            expected = (a["speed_kmh"] + b["speed_kmh"]) / 2 / 3.6 * INTERVAL_S
            errors.append(step - expected)
            noise.append(np.hypot(a["accuracy_m"], b["accuracy_m"]))
    errors, noise = np.abs(np.array(errors)), np.array(noise)
    # Position noise per axis is accuracy/1.51, so 3 x the combined accuracy is a wide bound.
    assert np.mean(errors <= 3 * noise) > 0.97
    assert np.median(errors) < np.median(noise)


def test_points_stay_near_their_route(tracks: dict[str, list[dict]]) -> None:
    for events in list(tracks.values())[:10]:
        for e in events[::120]:
            assert _distance_to_route(e["lat"], e["lon"], ROUTES[e["route_id"]]) < max(
                5 * e["accuracy_m"], 30
            )
            assert e["city"] == SETTINGS.gps_routes[e["route_id"]].city


def test_noise_matches_reported_accuracy() -> None:
    config = SETTINGS.devices.gps.model_copy(update={"count": 2000})
    fleet = GpsFleet(config, SETTINGS.gps_routes, 9, START_MS)
    idx = np.arange(fleet.count)
    fixes = fleet.step(idx, np.full(fleet.count, START_MS + 5_000))
    error = haversine_m(fixes["lat"], fixes["lon"], fixes["true_lat"], fixes["true_lon"])
    # accuracy_m is the 68 % radius: about 68 % of fixes lie within it of the true point.
    within = np.mean(error <= fixes["accuracy_m"])
    assert 0.63 < within < 0.73, within


def test_speeds_vary_between_stops_and_free_flow(tracks: dict[str, list[dict]]) -> None:
    speeds = np.array([e["speed_kmh"] for events in tracks.values() for e in events])
    assert np.mean(speeds < 2) > 0.03, "vehicles never stop"
    assert np.mean(speeds > 30) > 0.2, "vehicles never reach free flow"
    assert speeds.max() <= 120


def test_heading_follows_movement(tracks: dict[str, list[dict]]) -> None:
    agree = []
    for events in tracks.values():
        for a, b in itertools.pairwise(events):
            if min(a["speed_kmh"], b["speed_kmh"]) > 25:
                moved = bearing_deg(a["lat"], a["lon"], b["lat"], b["lon"])
                diff = abs((b["heading_deg"] - moved + 180) % 360 - 180)
                agree.append(diff < 30)
    assert np.mean(agree) > 0.9


def test_open_routes_reverse_and_closed_routes_loop() -> None:
    delhi = RouteGeometry.from_config("delhi_ring_road", SETTINGS.gps_routes["delhi_ring_road"])
    chennai = RouteGeometry.from_config("chennai_omr", SETTINGS.gps_routes["chennai_omr"])
    assert delhi.loops and not chennai.loops
    lat, lon = chennai.position(np.array([0.0, chennai.length_m]))
    first, last = (
        SETTINGS.gps_routes["chennai_omr"].waypoints[0],
        SETTINGS.gps_routes["chennai_omr"].waypoints[-1],
    )
    assert haversine_m(lat[0], lon[0], *first) < 1 and haversine_m(lat[1], lon[1], *last) < 1
