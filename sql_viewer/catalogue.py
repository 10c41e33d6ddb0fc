"""The table catalogue: which tables the read-only role can see, and their shape.

All the viewer's own SQL lives here. Table names that arrive in URLs are only ever
matched against this catalogue and then quoted with `sql.Identifier`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import errors, sql

from openpipe.storage.schema import storage_label
from sql_viewer.runner import QueryFailed, QueryResult, QueryRunner

log = logging.getLogger(__name__)

SINK_OFFSETS_TABLE = (
    "sink_offsets"  # docs/architecture.md §5: sink, kafka_topic, kafka_partition, next_offset
)
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

# A relation's size on disk: exact, or (when some relation is locked, see list_tables) from
# the catalogue's statistics, which take no lock: its pages, its TOAST table's and its
# indexes', as of the last VACUUM, ANALYZE or CREATE INDEX. A relation never vacuumed or
# analyzed (reltuples -1) has no estimate: NULL, not 0.
EXACT_SIZE = sql.SQL("pg_catalog.pg_total_relation_size(c.oid)")
ESTIMATED_SIZE = sql.SQL("""CASE WHEN c.reltuples >= 0 THEN (c.relpages::bigint
    + COALESCE((SELECT t.relpages FROM pg_catalog.pg_class t WHERE t.oid = c.reltoastrelid), 0)
    + COALESCE((SELECT sum(i.relpages) FROM pg_catalog.pg_index x
                JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = c.oid), 0)
    ) * current_setting('block_size')::bigint END""")

TABLES_SQL = sql.SQL("""
WITH RECURSIVE visible AS (
    SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%'
      AND n.nspname NOT LIKE '\\_timescaledb%'
      AND n.nspname NOT LIKE 'timescaledb\\_%'
      AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
), tree AS (
    SELECT oid AS root, oid AS rel, 0 AS depth FROM visible
    UNION ALL
    SELECT tree.root, i.inhrelid, tree.depth + 1
    FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.rel
), sizes AS (
    SELECT tree.root,
           sum(c.reltuples) FILTER (WHERE c.reltuples >= 0 AND c.relkind IN ('r', 'm', 'f'))
               AS estimated_rows,
           sum({size}) AS size_bytes,
           count(*) FILTER (WHERE tree.depth > 0) AS child_count
    FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.rel
    GROUP BY tree.root
)
SELECT v.schema, v.name,
       CASE v.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
            WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
            ELSE 'foreign table' END AS kind,
       s.estimated_rows::bigint AS estimated_rows,
       s.size_bytes::bigint AS size_bytes,
       s.child_count::int AS child_count,
       CASE WHEN v.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(v.oid) END AS partition_key,
       (SELECT json_agg(json_build_object(
                   'name', a.attname,
                   'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                   'nullable', NOT a.attnotnull) ORDER BY a.attnum)
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM visible v JOIN sizes s ON s.root = v.oid
ORDER BY v.schema = 'public' DESC, v.schema, v.name
""")

# approximate_row_count() because a hypertable's own reltuples is -1 (its rows are in
# chunks); hypertable_size() and the compression stats include the compressed chunks,
# which are not in the hypertable's inheritance tree. They open the chunks, so the
# lock-free read (list_tables) takes only the chunk count and settings.
HYPERTABLES_SQL = sql.SQL("""
SELECT h.hypertable_schema, h.hypertable_name, h.num_chunks, d.column_name,
       h.compression_enabled, {figures}
FROM timescaledb_information.hypertables h
CROSS JOIN LATERAL (SELECT format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass
                    AS oid) r
LEFT JOIN timescaledb_information.dimensions d
  ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name
 AND d.dimension_number = 1
{compression}
""")
HYPERTABLE_FIGURES = {
    "figures": sql.SQL(
        "approximate_row_count(r.oid), hypertable_size(r.oid), "
        "COALESCE(c.number_compressed_chunks, 0), "
        "c.before_compression_total_bytes, c.after_compression_total_bytes"
    ),
    "compression": sql.SQL(
        "LEFT JOIN LATERAL hypertable_compression_stats(r.oid) c ON h.compression_enabled"
    ),
}
NO_HYPERTABLE_FIGURES = {
    "figures": sql.SQL("NULL, NULL, NULL, NULL, NULL"),
    "compression": sql.SQL(""),
}

# What the database stores its time-series tables as (docs/architecture.md §5): schema_migrations
# records the path the migrations took; the extension may be installed but unused.
STORAGE_SQL = sql.SQL("""
SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'),
       to_regclass('schema_migrations') IS NOT NULL
       AND has_table_privilege('schema_migrations', 'SELECT')
""")
RECORDED_STORAGE_SQL = sql.SQL("SELECT storage FROM schema_migrations LIMIT 1")

HAS_TIMESCALE_SQL = sql.SQL("""
SELECT CASE WHEN to_regnamespace('timescaledb_information') IS NULL THEN false
            ELSE has_schema_privilege('timescaledb_information', 'USAGE') END
""")


class TableNotFound(LookupError):
    """No readable table by that name."""


@dataclass(frozen=True, slots=True)
class TableInfo:
    schema: str
    name: str
    kind: str
    estimated_rows: int | None
    size_bytes: int | None
    columns: list[dict[str, Any]]
    partitioning: dict[str, Any] | None
    size_estimated: bool = False

    @property
    def qualified_name(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def time_column(self) -> str | None:
        """The column the latest rows are ordered by: the hypertable's, else the first time."""
        if self.partitioning and self.partitioning.get("time_column"):
            return self.partitioning["time_column"]
        return next((c["name"] for c in self.columns if c["type"] in TIME_TYPES), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of one catalogue entry."""
        return {
            "schema": self.schema,
            "name": self.qualified_name,
            "kind": self.kind,
            "estimated_rows": self.estimated_rows,
            "size_bytes": self.size_bytes,
            "size_estimated": self.size_estimated,
            "columns": self.columns,
            "partitioning": self.partitioning,
        }


def list_tables(runner: QueryRunner) -> list[TableInfo]:
    """Every table, view and partitioned table the read-only role may SELECT from.

    Exact sizes and hypertable figures open every relation. One relation locked by another
    session (a migration, a partition being created, a chunk being compressed) would then
    fail the whole list after `viewer.lock_timeout_ms`; instead the list is read again from
    the catalogue's statistics alone, which take no lock, and says its sizes are estimates.
    """
    try:
        return _read_catalogue(runner, exact=True)
    except QueryFailed as exc:
        if exc.sqlstate != errors.LockNotAvailable.sqlstate:
            raise
        log.warning("listing tables from catalogue estimates: %s", exc.message)
        return _read_catalogue(runner, exact=False)


def _read_catalogue(runner: QueryRunner, *, exact: bool) -> list[TableInfo]:
    hypertables = _hypertables(runner, exact)
    query = TABLES_SQL.format(size=EXACT_SIZE if exact else ESTIMATED_SIZE)
    tables = []
    for schema, name, kind, rows, size, children, key, columns in runner.read(query).rows:
        partitioning = None
        if (schema, name) in hypertables:
            partitioning = hypertables[schema, name]
            figures = partitioning.pop("estimated_rows"), partitioning.pop("size_bytes")
            if exact:
                rows, size = figures
            kind = "hypertable"
        elif key:
            partitioning = {"type": "partitioned", "key": key, "partitions": children}
        tables.append(
            TableInfo(schema, name, kind, rows, size, columns or [], partitioning, not exact),
        )
    return tables


def find_table(runner: QueryRunner, name: str, tables: list[TableInfo] | None = None) -> TableInfo:
    """Match a URL's table name (`name` or `schema.name`) against the catalogue."""
    tables = list_tables(runner) if tables is None else tables
    matches = [t for t in tables if name in (t.qualified_name, f"{t.schema}.{t.name}")]
    if not matches:
        matches = [t for t in tables if t.name == name]
    if len(matches) != 1:
        raise TableNotFound(
            f"no single readable table named {name!r}; GET /api/tables lists them"
            + (" (qualify it as schema.name)" if matches else "")
        )
    return matches[0]


def latest_rows(runner: QueryRunner, table: TableInfo, limit: int) -> QueryResult:
    """The newest rows by the table's time column (or any `limit` rows if it has none)."""
    order = table.time_column
    query = sql.SQL("SELECT * FROM {table}{order} LIMIT {limit}").format(
        table=table.identifier,
        order=sql.SQL(" ORDER BY {} DESC NULLS LAST").format(sql.Identifier(order))
        if order
        else sql.SQL(""),
        limit=sql.Literal(limit),
    )
    return runner.read(query, cap=limit)


def sink_offsets(runner: QueryRunner) -> list[tuple[str, str, int, int]] | None:
    """(sink, topic, partition, next_offset) rows, or None when the table does not exist."""
    try:
        table = find_table(runner, SINK_OFFSETS_TABLE)
    except TableNotFound:
        return None
    query = sql.SQL(
        "SELECT sink, kafka_topic, kafka_partition, next_offset FROM {} "
        "ORDER BY sink, kafka_topic, kafka_partition"
    ).format(table.identifier)
    return [tuple(row) for row in runner.read(query).rows]


def storage_mode(runner: QueryRunner, tables: list[TableInfo]) -> dict[str, Any]:
    """The store in use, e.g. 'TimescaleDB 2.17.2, 10 hypertables' or 'native partitions'.

    On native partitions row counts are the planner's estimates and there is no
    compression; when a locked relation made the list fall back to the catalogue's
    statistics, the figures are estimates: the note says which.
    """
    version, migrated = runner.read(STORAGE_SQL).rows[0]
    recorded = runner.read(RECORDED_STORAGE_SQL).rows if migrated else []
    mode = recorded[0][0] if recorded else None
    hypertables = sum(1 for t in tables if t.kind == "hypertable")
    if any(t.size_estimated for t in tables):
        note = (
            "a relation was locked, so rows and sizes are the catalogue's statistics "
            "(reltuples and relpages, as of the last VACUUM or ANALYZE)"
        )
    elif mode == "timescaledb":
        note = "row counts from approximate_row_count(); compressed chunks count in sizes"
    else:
        note = (
            "row counts are the planner's estimates (reltuples, after ANALYZE); "
            "no compression on native partitions"
        )
    return {
        "mode": mode,
        "timescaledb_version": version,
        "hypertables": hypertables,
        "label": storage_label(mode, version, hypertables),
        "note": note,
    }


def _hypertables(runner: QueryRunner, exact: bool) -> dict[tuple[str, str], dict[str, Any]]:
    if not runner.read(HAS_TIMESCALE_SQL).rows[0][0]:
        return {}
    query = HYPERTABLES_SQL.format(**(HYPERTABLE_FIGURES if exact else NO_HYPERTABLE_FIGURES))
    found = {}
    for row in runner.read(query).rows:
        schema, name, chunks, column, compressed, rows, size, done, before, after = row
        found[schema, name] = {
            "type": "hypertable",
            "chunks": chunks,
            "time_column": column,
            "compression": {
                "enabled": bool(compressed),
                "compressed_chunks": done,  # None: not read (see list_tables)
                "before_bytes": before,
                "after_bytes": after,
            },
            "estimated_rows": rows,
            "size_bytes": size,
        }
    return found
