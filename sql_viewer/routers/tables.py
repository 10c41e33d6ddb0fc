"""GET /api/tables and /api/tables/{name}: the catalogue and the latest rows of a table."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sql_viewer.catalogue import find_table, latest_rows, list_tables, storage_mode
from sql_viewer.deps import RunnerDep, SettingsDep
from sql_viewer.errors import json_response
from sql_viewer.routers.query import result_json

router = APIRouter(prefix="/api/tables", tags=["tables"])


@router.get("")
def read_tables(runner: RunnerDep) -> Response:
    """Every readable table with columns, types, estimated rows and partitioning; the store."""
    tables = list_tables(runner)
    return json_response(
        {
            "tables": [table.to_json() for table in tables],
            "storage": storage_mode(runner, tables),
        }
    )


@router.get("/{name}")
def read_table(name: str, runner: RunnerDep, settings: SettingsDep) -> Response:
    """One table's shape and its newest rows (by its time column)."""
    tables = list_tables(runner)
    table = find_table(runner, name, tables)
    latest = latest_rows(runner, table, settings.viewer.latest_rows)
    return json_response(
        {
            **table.to_json(),
            "order_column": table.time_column,
            "latest_rows": result_json(latest),
            "storage": storage_mode(runner, tables),
        }
    )
