"""OPENPIPE_EVENT_STATS's exact sum: each reading rounded to 6 places HALF_UP, as decimals.

The function sums in millionths when a reading has a short decimal form and falls back to
BigDecimal otherwise; both must give what the Python reference model gives (its
`flink_jobs.reference.exact`), including half-way cases, negative readings and
values too large or too long for the fast path.
"""

from __future__ import annotations

import random
from decimal import Decimal

from flink_table_helpers import batch_env
from pyflink.table import DataTypes

from flink_jobs import health_sql
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
    groups = _readings()
    rows = [
        (g, 0, e, float(x)) for g, readings in enumerate(groups) for e, x in enumerate(readings)
    ]
    t_env = batch_env(settings)
    schema = DataTypes.ROW(
        [
            DataTypes.FIELD("grp", DataTypes.INT()),
            DataTypes.FIELD("hi", DataTypes.BIGINT()),
            DataTypes.FIELD("lo", DataTypes.BIGINT()),
            DataTypes.FIELD("reading", DataTypes.DOUBLE()),
        ]
    )
    t_env.create_temporary_view("readings", t_env.from_elements(rows, schema))
    result = t_env.execute_sql(
        f"SELECT grp, {health_sql.STATS_FUNCTION}(hi, lo, reading).reading_sum "
        "FROM readings GROUP BY grp"
    )
    with result.collect() as results:
        sums = {row[0]: row[1] for row in results}
    wrong = {
        g: (groups[g], sums.get(g), _expected(groups[g]))
        for g in range(len(groups))
        if sums.get(g) != _expected(groups[g])
    }
    assert not wrong, f"{len(wrong)} of {len(groups)} sums differ: {list(wrong.items())[:5]}"
