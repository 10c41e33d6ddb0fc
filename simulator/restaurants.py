"""Restaurant POS terminals in Indian cities: orders with a lifecycle and lunch/dinner peaks.

Each order moves placed -> served -> closed (or placed -> cancelled) while its payment moves
pending -> paid (or failed, then paid by another method) and a closed, paid order is
occasionally refunded. Every change of state is one event. Pure and seeded: a heap of
scheduled actions, no threads.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

import numpy as np
import orjson

from openpipe.config import RestaurantDevices
from openpipe.events import SCHEMA_VERSION
from simulator.common import (
    IST_OFFSET_HOURS,
    EventBatch,
    event_times,
    family_rng,
    uuid4_strings,
)

MINUTE_MS = 60_000
CITIES = (
    ("Mumbai", 0.2),
    ("Delhi", 0.18),
    ("Bengaluru", 0.16),
    ("Chennai", 0.1),
    ("Hyderabad", 0.1),
    ("Kolkata", 0.08),
    ("Pune", 0.07),
    ("Ahmedabad", 0.05),
    ("Jaipur", 0.03),
    ("Kochi", 0.03),
)
# (dish code, name, price in INR, popularity weight)
DISHES: tuple[tuple[str, str, float, float], ...] = (
    ("D001", "Masala Dosa", 120.0, 8),
    ("D002", "Idli Sambar", 80.0, 6),
    ("D003", "Medu Vada", 70.0, 4),
    ("D004", "Pav Bhaji", 140.0, 6),
    ("D005", "Vada Pav", 40.0, 5),
    ("D006", "Chole Bhature", 160.0, 6),
    ("D007", "Paneer Butter Masala", 280.0, 7),
    ("D008", "Dal Makhani", 240.0, 7),
    ("D009", "Butter Chicken", 340.0, 8),
    ("D010", "Chicken Biryani", 320.0, 10),
    ("D011", "Veg Biryani", 240.0, 6),
    ("D012", "Mutton Rogan Josh", 420.0, 3),
    ("D013", "Fish Curry", 360.0, 3),
    ("D014", "Palak Paneer", 260.0, 4),
    ("D015", "Aloo Gobi", 180.0, 3),
    ("D016", "Butter Naan", 50.0, 12),
    ("D017", "Tandoori Roti", 30.0, 8),
    ("D018", "Jeera Rice", 150.0, 5),
    ("D019", "Gulab Jamun", 90.0, 4),
    ("D020", "Masala Chai", 30.0, 9),
    ("D021", "Mango Lassi", 110.0, 5),
    ("D022", "Filter Coffee", 40.0, 5),
    ("D023", "Samosa", 30.0, 5),
    ("D024", "Tandoori Chicken", 380.0, 4),
)
ORDER_STATES: dict[tuple[str, str], frozenset[tuple[str, str]]] = {
    ("placed", "pending"): frozenset({("served", "pending"), ("cancelled", "pending")}),
    ("served", "pending"): frozenset({("closed", "paid"), ("served", "failed")}),
    ("served", "failed"): frozenset({("closed", "paid")}),
    ("closed", "paid"): frozenset({("closed", "refunded")}),
    ("cancelled", "pending"): frozenset(),
    ("closed", "refunded"): frozenset(),
}
FIRST_STATE = ("placed", "pending")


def is_legal_transition(before: tuple[str, str] | None, after: tuple[str, str]) -> bool:
    """Whether an order may move from `before` (None: a new order) to `after`."""
    if before is None:
        return after == FIRST_STATE
    return after in ORDER_STATES.get(before, frozenset())


def demand_profile(times_ms: float) -> float:
    """Relative order rate by hour in IST: 1 off-peak, about 3x at lunch and dinner."""
    hour = (times_ms / 3_600_000 + IST_OFFSET_HOURS) % 24.0
    lunch = 2.0 * math.exp(-0.5 * ((hour - 13.5) / 1.0) ** 2)
    dinner = 2.3 * math.exp(-0.5 * ((hour - 21.0) / 1.2) ** 2)
    closed = 0.08 if 1.0 <= hour < 7.0 else 1.0
    return (1.0 + lunch + dinner) * closed


PEAK_PROFILE = 3.4  # upper bound of demand_profile, for thinning


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw by inversion (small means only)."""
    k, p, threshold = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


# A scheduled step (a customer arriving or an open order's next change) is one int on the
# heap: at a few thousand events/s the simulator holds over 100,000 open orders, each for
# about an hour, and tuples of objects would cost over 300 bytes apiece (about 60 as one
# int). From high bits to low: the time (ms), a sequence number that keeps pushes in
# order, then the order (Order.pack); an order number of 0 stands for "a customer arrives".
SEQ_BITS = 48
LINE_BITS, MAX_LINES = 9, 8  # a line: dish index (5 bits), quantity (4 bits)
RESTAURANT_BITS, NUMBER_BITS, TABLE_BITS = 24, 40, 24
STATES = tuple(ORDER_STATES)
METHODS = (None, "upi", "card", "cash")
LOW_BITS = TABLE_BITS + 3 + 2 + 1 + LINE_BITS * MAX_LINES  # below the order number
RESTAURANT_SHIFT = NUMBER_BITS + LOW_BITS  # an arrival is just the restaurant, shifted
ORDER_BITS = RESTAURANT_BITS + RESTAURANT_SHIFT
ORDER_MASK = (1 << ORDER_BITS) - 1
ORDER_NUMBERS = ((1 << NUMBER_BITS) - 1) << LOW_BITS
MAX_RESTAURANTS = 1 << RESTAURANT_BITS  # (tables_per_restaurant is capped far below TABLE_BITS)


@dataclass(slots=True)
class Order:
    """One open order at a restaurant, unpacked while one of its steps is taken."""

    restaurant: int
    number: int
    table: int
    lines: tuple[tuple[int, int], ...]  # (dish index, quantity)
    state: tuple[str, str] = FIRST_STATE
    payment_method: str | None = None
    owns_table: bool = True

    def pack(self) -> int:
        packed = self.restaurant
        packed = packed << NUMBER_BITS | self.number
        packed = packed << TABLE_BITS | self.table
        packed = packed << 3 | STATES.index(self.state)
        packed = packed << 2 | METHODS.index(self.payment_method)
        packed = packed << 1 | self.owns_table
        for dish, quantity in self.lines + ((0, 0),) * (MAX_LINES - len(self.lines)):
            packed = packed << LINE_BITS | dish << 4 | quantity
        return packed

    @classmethod
    def unpack(cls, packed: int) -> Order:
        lines = []
        for _ in range(MAX_LINES):
            line, packed = packed & (1 << LINE_BITS) - 1, packed >> LINE_BITS
            if line:
                lines.append((line >> 4, line & 15))
        owns_table, packed = bool(packed & 1), packed >> 1
        method, packed = METHODS[packed & 3], packed >> 2
        state, packed = STATES[packed & 7], packed >> 3
        table, packed = packed & (1 << TABLE_BITS) - 1, packed >> TABLE_BITS
        number, restaurant = packed & (1 << NUMBER_BITS) - 1, packed >> NUMBER_BITS
        return cls(restaurant, number, table, tuple(reversed(lines)), state, method, owns_table)


class RestaurantFleet:
    """All simulated POS terminals; `generate` returns order events due in a time window."""

    family = "restaurants"
    device_type = "restaurant_pos"

    def __init__(self, config: RestaurantDevices, seed: int, start_ms: int) -> None:
        self._config = config
        # Scalar draws dominate here, and Python's generator is far cheaper per call.
        self._rng = random.Random(int(family_rng(seed, self.family, "model").integers(2**63)))
        self._id_rng = family_rng(seed, self.family, f"ids@{start_ms}")
        # Order ids restart per run, so the run's start (seconds, hex) keeps them unique.
        self._run_tag = format(start_ms // 1000, "x")
        self.rate_multiplier = 1.0
        self._heap: list[int] = []  # scheduled steps, packed (see SEQ_BITS)
        self._seq = 0
        self.device_ids: list[str] = []
        self.restaurant_ids: list[str] = []
        self.cities: list[str] = []
        self._free_tables: list[list[int]] = []
        self._order_numbers: list[int] = []
        self._active: list[bool] = []
        self._dish_codes = list(range(len(DISHES)))
        self._dish_weights = [d[3] for d in DISHES]
        self.add(config.count, start_ms)

    @property
    def count(self) -> int:
        return sum(self._active)

    def add(self, n: int, now_ms: int) -> None:
        """Open `n` new restaurants; their first customers arrive after `now_ms`."""
        if len(self.device_ids) + n > MAX_RESTAURANTS:
            raise ValueError(f"at most {MAX_RESTAURANTS:,} restaurants can be opened in one run")
        names = [c for c, _ in CITIES]
        weights = [w for _, w in CITIES]
        for city in self._rng.choices(names, weights, k=max(n, 0)):
            number = len(self.device_ids)
            self.device_ids.append(f"pos-{number:05d}")
            self.restaurant_ids.append(f"rest-{number:05d}")
            self.cities.append(str(city))
            self._free_tables.append(list(range(self._config.tables_per_restaurant, 0, -1)))
            self._order_numbers.append(0)
            self._active.append(True)
            self._push(self._next_arrival(now_ms), number << RESTAURANT_SHIFT)

    def remove(self, n: int) -> None:
        """Close the `n` most recently opened restaurants (their open orders stop)."""
        for number in reversed(range(len(self._active))):
            if n <= 0:
                break
            if self._active[number]:
                self._active[number] = False
                n -= 1

    def _push(self, when_ms: int, packed_order: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, ((when_ms << SEQ_BITS | self._seq) << ORDER_BITS) | packed_order)

    @property
    def open_orders(self) -> int:
        """Orders placed and not yet finished (or with a refund still to come)."""
        return sum(1 for step in self._heap if step & ORDER_NUMBERS)

    def _next_arrival(self, after_ms: int) -> int:
        """Next customer arrival by thinning a Poisson process with the daily demand profile."""
        peak_rate = PEAK_PROFILE * self.rate_multiplier / (self._config.order_interval_s * 1000)
        t = float(after_ms)
        while True:
            t += self._rng.expovariate(peak_rate)
            if self._rng.random() * PEAK_PROFILE <= demand_profile(t):
                return int(t)

    def _new_order(self, restaurant: int) -> Order:
        rng = self._rng
        tables = self._free_tables[restaurant]
        party = rng.choice((1, 2, 2, 2, 3, 4, 4, 5, 6))
        count = min(1 + _poisson(rng, 0.9 * party), MAX_LINES)
        picks = set(rng.choices(self._dish_codes, self._dish_weights, k=count))
        lines = []
        for k in sorted(picks):
            is_bread = DISHES[k][0] in ("D016", "D017")
            lines.append((k, rng.randint(1, party + 1) if is_bread else rng.randint(1, 2)))
        self._order_numbers[restaurant] += 1
        number = self._order_numbers[restaurant]
        if tables:
            return Order(restaurant, number, tables.pop(), tuple(lines))
        # Full house: the party shares a table, so the configured order rate still holds.
        table = rng.randint(1, self._config.tables_per_restaurant)
        return Order(restaurant, number, table, tuple(lines), owns_table=False)

    def _advance(self, order: Order, now_ms: int) -> None:
        """Move `order` to its next state and schedule the step after it."""
        rng = self._rng
        status, payment = order.state
        next_minutes = None
        if order.state == FIRST_STATE:
            if rng.random() < 0.05:
                order.state = ("cancelled", "pending")
            else:
                order.state = ("served", "pending")
                next_minutes = rng.uniform(20, 60)
        elif status == "served":
            order.payment_method = rng.choices(("upi", "card", "cash"), (0.55, 0.25, 0.2))[0]
            if payment == "pending" and order.payment_method != "cash" and rng.random() < 0.06:
                order.state = ("served", "failed")
                next_minutes = rng.uniform(1, 4)
            else:
                order.state = ("closed", "paid")
                if rng.random() < 0.02:
                    next_minutes = rng.uniform(5, 40)
        elif order.state == ("closed", "paid"):
            order.state = ("closed", "refunded")
        if next_minutes is not None:
            self._push(now_ms + int(next_minutes * MINUTE_MS), order.pack())
        finished = order.state[0] in ("closed", "cancelled")
        if order.owns_table and finished and status not in ("closed", "cancelled"):
            self._free_tables[order.restaurant].append(order.table)

    def _event(self, order: Order) -> dict:
        status, payment = order.state
        r = order.restaurant
        items = [
            {"dish_code": DISHES[k][0], "quantity": quantity, "unit_price_inr": DISHES[k][2]}
            for k, quantity in order.lines
        ]
        return {
            "restaurant_id": self.restaurant_ids[r],
            "city": self.cities[r],
            "order_id": f"ord-{r:05d}-{self._run_tag}-{order.number:06d}",
            "table_number": order.table,
            "items": items,
            "total_inr": round(sum(i["quantity"] * i["unit_price_inr"] for i in items), 2),
            "order_status": status,
            "payment_status": payment,
            "payment_method": order.payment_method,
        }

    def generate(self, t0_ms: int, t1_ms: int) -> EventBatch:
        """Order events with event time before `t1_ms`, sorted by time."""
        times, owners, bodies = [], [], []
        heap = self._heap
        due = t1_ms << SEQ_BITS + ORDER_BITS
        while heap and heap[0] < due:
            step = heapq.heappop(heap)
            when, packed = step >> SEQ_BITS + ORDER_BITS, step & ORDER_MASK
            restaurant = packed >> RESTAURANT_SHIFT
            if not self._active[restaurant]:
                continue
            if not packed & ORDER_NUMBERS:  # a customer arrives
                self._push(self._next_arrival(when), packed)
                order = self._new_order(restaurant)
                serve = int(self._rng.lognormvariate(math.log(15), 0.35) * MINUTE_MS)
                self._push(when + serve, order.pack())
            else:
                order = Order.unpack(packed)
                self._advance(order, when)
            times.append(when)
            owners.append(restaurant)
            bodies.append(self._event(order))
        ids = uuid4_strings(self._id_rng, len(times)).tolist()
        stamps = event_times(np.array(times, dtype=np.int64)).tolist()
        keys = [self.device_ids[r] for r in owners]
        values = [
            orjson.dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": eid,
                    "event_time": ts,
                    "device_type": "restaurant_pos",
                    "device_id": key,
                    **body,
                }
            )
            for eid, ts, key, body in zip(ids, stamps, keys, bodies, strict=True)
        ]
        return EventBatch(times, keys, values)
