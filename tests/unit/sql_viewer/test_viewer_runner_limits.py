"""The runner's limits without a database: rows within the byte budget, queries in flight."""

import pytest

from openpipe.config import load_settings
from sql_viewer.runner import MAX_CELL_BYTES, MAX_RESULT_BYTES, ROW_CAP, QueryFailed, QueryRunner


def _runner(**viewer: object) -> QueryRunner:
    settings = load_settings()
    limits = settings.viewer.model_copy(update=viewer)
    return QueryRunner(settings.database, limits)  # the pool is not opened


def test_rows_stop_at_the_byte_budget_and_long_cells_are_cut():
    runner = _runner(max_result_bytes=65536, max_cell_bytes=16384)
    huge = [("x" * 20_000_000,) for _ in range(15)]
    rows, reason, cut = runner._collect(iter(huge), cap=100)
    assert reason == MAX_RESULT_BYTES and 0 < len(rows) < 15
    assert cut == len(rows) and all(len(value) < 16500 for (value,) in rows)
    assert sum(len(value) for (value,) in rows) <= 65536


def test_row_cap_and_cut_cells_are_told_apart():
    runner = _runner(max_cell_bytes=256)
    assert runner._collect(iter([(1,)] * 5), cap=4) == ([(1,)] * 4, ROW_CAP, 0)
    assert runner._collect(iter([(1,)] * 4), cap=4) == ([(1,)] * 4, None, 0)
    rows, reason, cut = runner._collect(iter([("y" * 300,), (2,)]), cap=4)
    assert reason == MAX_CELL_BYTES and cut == 1 and rows[1] == (2,)


def test_one_query_more_than_the_in_flight_limit_is_refused_with_429():
    runner = _runner(max_queries_in_flight=2)
    with runner._slot(), runner._slot(), pytest.raises(QueryFailed) as refused, runner._slot():
        pass
    assert refused.value.status == 429 and refused.value.kind == "busy"
    assert "viewer.max_queries_in_flight" in refused.value.message
    with runner._slot():  # the places are free again
        pass
