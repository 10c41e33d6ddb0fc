"""POST /api/query and GET /api/query.csv: one read-only statement under the viewer's limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from sql_viewer.deps import RunnerDep
from sql_viewer.encode import csv_lines, json_rows
from sql_viewer.errors import json_response
from sql_viewer.metrics import QUERIES, QUERY_SECONDS
from sql_viewer.runner import QueryFailed, QueryResult, QueryRunner

router = APIRouter(prefix="/api", tags=["query"])

MAX_SQL_CHARS = 100_000


class QueryRequest(BaseModel):
    sql: Annotated[str, Field(max_length=MAX_SQL_CHARS)]
    limit: Annotated[int | None, Field(ge=1)] = None


def result_json(result: QueryResult) -> dict[str, Any]:
    """The API shape of a result: columns, rows, row_count, truncated and why, elapsed_ms.

    `truncated_reason` is null, "row_cap" (more rows than the limit), "max_result_bytes"
    (the rows shown fill viewer.max_result_bytes) or "max_cell_bytes" (every row is there,
    `cells_cut` cells were cut to viewer.max_cell_bytes and end with a "[cut: ...]" marker).
    """
    return {
        "columns": result.columns,
        "column_types": result.column_types,
        "rows": json_rows(result.rows),
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "truncated_reason": result.truncated_reason,
        "cells_cut": result.cells_cut,
        "elapsed_ms": result.elapsed_ms,
    }


def run_counted(runner: QueryRunner, text: str, limit: int | None) -> QueryResult:
    """Run a user query and count its outcome."""
    try:
        result = runner.run(text, limit)
    except QueryFailed as exc:
        QUERIES.labels(exc.kind).inc()
        raise
    QUERIES.labels(result.truncated_reason or "ok").inc()
    QUERY_SECONDS.observe(result.elapsed_ms / 1000)
    return result


@router.post("/query")
def run_query(body: QueryRequest, runner: RunnerDep) -> Response:
    """Run one SELECT (or WITH/VALUES/TABLE/EXPLAIN); at most `limit` (<= row cap) rows."""
    return json_response(result_json(run_counted(runner, body.sql, body.limit)))


@router.get("/query.csv")
def download_csv(
    sql: Annotated[str, Query(max_length=MAX_SQL_CHARS)],
    runner: RunnerDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """The same query as CSV; `X-OpenPipe-Truncated: true` (and why) when limits cut it."""
    result = run_counted(runner, sql, limit)
    return StreamingResponse(
        csv_lines(result.columns, result.rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="query.csv"',
            "X-OpenPipe-Truncated": "true" if result.truncated else "false",
            "X-OpenPipe-Truncated-Reason": result.truncated_reason or "",
            "X-OpenPipe-Cells-Cut": str(result.cells_cut),
            "X-OpenPipe-Row-Count": str(len(result.rows)),
        },
    )
