"""Restaurant model: legal order lifecycles, consistent totals, lunch and dinner peaks."""

from __future__ import annotations

import tracemalloc
from collections import Counter, defaultdict

import numpy as np
import orjson
import pytest

from openpipe.config import load_settings
from openpipe.events import ORDER_STATUSES, PAYMENT_STATUSES
from simulator.common import ist_hour
from simulator.restaurants import (
    MAX_RESTAURANTS,
    ORDER_STATES,
    Order,
    RestaurantFleet,
    is_legal_transition,
)

SETTINGS = load_settings()
START_MS = 1_767_205_800_000  # midnight IST
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def day_of_orders() -> list[dict]:
    config = SETTINGS.devices.restaurants.model_copy(update={"count": 30, "order_interval_s": 240})
    fleet = RestaurantFleet(config, 11, START_MS)
    events = []
    for t in range(START_MS, START_MS + DAY_MS, 300_000):
        events += [orjson.loads(v) for v in fleet.generate(t, t + 300_000).values]
    return events


def test_state_machine_covers_only_contract_values() -> None:
    for before, afters in ORDER_STATES.items():
        for status, payment in (before, *afters):
            assert status in ORDER_STATUSES and payment in PAYMENT_STATUSES


def test_orders_never_make_an_illegal_transition(day_of_orders: list[dict]) -> None:
    last: dict[str, tuple[str, str]] = {}
    seen = Counter()
    for e in day_of_orders:
        state = (e["order_status"], e["payment_status"])
        assert is_legal_transition(last.get(e["order_id"]), state), (last.get(e["order_id"]), e)
        seen[last.get(e["order_id"]), state] += 1
        last[e["order_id"]] = state
    # every kind of transition happens in a day, including failures and refunds
    expected = {(None, ("placed", "pending"))} | {
        (before, after) for before, afters in ORDER_STATES.items() for after in afters
    }
    assert expected <= set(seen), expected - set(seen)


def test_order_totals_and_lines_are_consistent(day_of_orders: list[dict]) -> None:
    tables = SETTINGS.devices.restaurants.tables_per_restaurant
    for e in day_of_orders:
        total = sum(i["quantity"] * i["unit_price_inr"] for i in e["items"])
        assert e["total_inr"] == pytest.approx(total)
        assert 1 <= e["table_number"] <= tables
        assert 1 <= len(e["items"]) <= 8
        paid = e["payment_status"] in ("paid", "refunded", "failed")
        assert (e["payment_method"] is not None) == paid


def test_event_times_are_ordered_per_order(day_of_orders: list[dict]) -> None:
    times = defaultdict(list)
    for e in day_of_orders:
        times[e["order_id"]].append(e["event_time"])
    assert all(t == sorted(t) for t in times.values())


def test_lunch_and_dinner_are_peaks(day_of_orders: list[dict]) -> None:
    placed = Counter()
    for e in day_of_orders:
        if e["order_status"] == "placed":
            ms = np.datetime64(e["event_time"].rstrip("Z"), "ms").astype(np.int64)
            placed[int(ist_hour(ms))] += 1
    assert placed[13] > 2 * placed[16]
    assert placed[21] > 2 * placed[16]
    assert placed[3] < placed[16]


def test_an_open_order_stays_small() -> None:
    """Open orders live about an hour, so at soak rates the simulator holds 100,000+ of them."""
    config = SETTINGS.devices.restaurants.model_copy(update={"count": 60})
    fleet = RestaurantFleet(config, 5, START_MS + 12 * 3_600_000)  # noon IST: lunch rush
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        t = START_MS + 12 * 3_600_000
        for _ in range(120):  # an hour, in 30 s steps
            fleet.generate(t, t + 30_000)
            t += 30_000
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    open_orders = fleet.open_orders
    assert open_orders > 5_000
    assert held / open_orders < 100, f"{held / open_orders:.0f} bytes per open order"


@pytest.mark.parametrize("state", list(ORDER_STATES))
@pytest.mark.parametrize("method", [None, "upi", "card", "cash"])
def test_an_order_packs_into_one_int_and_back(state: tuple[str, str], method: str | None) -> None:
    lines = tuple((dish, 1 + dish % 7) for dish in range(23, 15, -1))  # 8 lines, the last dishes
    for order in (
        Order(MAX_RESTAURANTS - 1, 2**40 - 1, 10_000, lines, state, method, owns_table=False),
        Order(0, 1, 1, ((0, 1),), state, method),
    ):
        assert Order.unpack(order.pack()) == order
