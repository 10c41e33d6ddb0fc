"""The window operator's exact sum: each reading rounded to 6 places HALF_UP, as decimals.

`EventReadings` (jvm/flink-wearables, the readings of a window slot) sums in millionths
when a reading has a short decimal form and falls back to BigDecimal otherwise; both must
give what the Python reference model gives (its `flink_jobs.reference.exact`), including
half-way cases, negative readings and values too large or too long for the fast path.
Readings this far out of range never pass validation, so the class is driven directly,
in the JVM the job's tests start.
"""

from __future__ import annotations

import random
from decimal import Decimal

from flink_table_helpers import batch_env
from pyflink.java_gateway import get_gateway

from flink_jobs.reference import exact

EDGES = [
    100.1,
    99.9,
    0.30000000000000004,
    0.1,
    0.2,
    1e-7,
    5e-7,
    4.999999e-7,
    1.5e-6,
    2.5e-6,
    -5e-7,
    -2.5e-6,
    -0.1,
    0.0,
    -0.0,
    123.4567895,
    123.4567885,
    999999.999999,
    999999.9999995,
    999999999.9999995,
    1e9,
    1.0000000000000002e9,
    123456789012.345678,
    4.35,
    1.0000005,
    2.0000005,
    0.0000015,
    7e-324,
    1e-300,
    72.0,
    180.5,
    95.25,
]


def _readings() -> list[list[float]]:
    rng = random.Random(14)
    groups = [[x] for x in EDGES]
    for _ in range(300):  # short and long decimal forms, the job's ranges and beyond
        groups.append(
            [round(rng.uniform(-1000, 10**6), rng.randint(0, 9)) for _ in range(rng.randint(1, 12))]
        )
    groups.append(EDGES)  # fast-path and fallback readings in one window
    return groups


def _expected(readings: list[float]) -> Decimal:
    return sum((exact(x) for x in readings), Decimal("0.000000"))


def test_the_exact_sum_rounds_each_reading_like_the_reference_model(settings):
    batch_env(settings)  # starts the JVM with the job's jar on its class path
    event_readings = get_gateway().jvm.dev.openpipe.flink.EventReadings
    groups = _readings()
    sums = {}
    for g, readings in enumerate(groups):
        window = event_readings()
        for e, x in enumerate(readings):
            window.put(0, e, float(x))
        sums[g] = window.sum()  # py4j hands a BigDecimal over as a Decimal
    wrong = {
        g: (groups[g], sums[g], _expected(groups[g]))
        for g in range(len(groups))
        if sums[g] != _expected(groups[g])
    }
    assert not wrong, f"{len(wrong)} of {len(groups)} sums differ: {list(wrong.items())[:5]}"
