"""Runs SQL as the read-only role, one READ ONLY transaction per query, under fixed limits.

Why each layer is there:
- the role (`database.reader_user`) can only SELECT app tables: no writes, no DDL,
  no temporary tables, no file or superuser functions, no `dagster` database;
- the session starts with `default_transaction_read_only` and the timeouts as
  startup options, and every query also gets `BEGIN READ ONLY` + `SET LOCAL` limits;
- the user's statement is sent as `SELECT * FROM (<statement>) LIMIT cap+1` over the
  extended protocol (pipeline mode), which refuses a second statement even if the
  text closes the parenthesis itself; a subquery also refuses DML inside a WITH and
  SELECT INTO. The limit bounds what reaches the client, and unlike a cursor it
  keeps parallel query available for big aggregates;
- the statement runs in that single Execute, whose `statement_timeout` was armed
  before it started, so `set_config()` inside the query cannot loosen its own limit;
- the transaction is always rolled back (which also undoes `set_config(..., false)`),
  and `DISCARD ALL` on return to the pool drops session state such as advisory locks.

Memory stays bounded: rows stream in one at a time (libpq single-row mode, which also
uses the extended protocol), each cell longer than `viewer.max_cell_bytes` is cut with
a marker, reading stops once the rows would pass `viewer.max_result_bytes` (the query is
cancelled), and at most `viewer.max_queries_in_flight` queries run at once; one more is
refused with 429 at once rather than queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from openpipe.config import DatabaseSettings, ViewerSettings
from sql_viewer.encode import fit_cell
from sql_viewer.guard import QueryRefused, Statement, check_read_statement

logger = logging.getLogger(__name__)

# The newlines keep a `--` comment in the user's text from swallowing the wrapper.
WRAP_PREFIX = "SELECT * FROM (\n"
WRAP_SUFFIX = "\n) AS openpipe_viewer_result LIMIT {limit}"


#: Why a result is not the whole answer (`QueryResult.truncated_reason`).
ROW_CAP = "row_cap"  # more rows than the limit asked for (at most viewer.row_cap)
MAX_RESULT_BYTES = "max_result_bytes"  # the rows shown fill viewer.max_result_bytes
MAX_CELL_BYTES = "max_cell_bytes"  # every row is there, but some cells were cut


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    column_types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_ms: float
    truncated_reason: str | None = None  # ROW_CAP, MAX_RESULT_BYTES or MAX_CELL_BYTES
    cells_cut: int = 0


class QueryFailed(Exception):
    """A query could not run; `status` is the HTTP status to answer with."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        kind: str = "sql_error",
        position: int | None = None,
        sqlstate: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.position = position
        self.sqlstate = sqlstate
        self.hint = hint

    def to_json(self) -> dict[str, Any]:
        """The error body the API returns: no stack trace, no DSN."""
        body: dict[str, Any] = {"error": self.message, "kind": self.kind}
        if self.position is not None:
            body["position"] = self.position
        if self.sqlstate:
            body["sqlstate"] = self.sqlstate
        if self.hint:
            body["hint"] = self.hint
        return body


class QueryRunner:
    """A small pool of read-only connections and the one safe way to run a query on it."""

    def __init__(self, database: DatabaseSettings, viewer: ViewerSettings) -> None:
        self.viewer = viewer
        self._limits = {
            "statement_timeout": viewer.statement_timeout_ms,
            "lock_timeout": viewer.lock_timeout_ms,
            "idle_in_transaction_session_timeout": viewer.idle_in_transaction_timeout_ms,
        }
        options = " ".join(
            ["-c default_transaction_read_only=on"]
            + [f"-c {name}={value}" for name, value in self._limits.items()]
        )
        self._set_limits = sql.SQL("; ").join(
            sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(value))
            for name, value in self._limits.items()
        )
        self._slots = threading.BoundedSemaphore(viewer.max_queries_in_flight)
        self._pool = ConnectionPool(
            database.dsn(reader=True),
            kwargs={
                "options": options,
                "application_name": "openpipe-sql-viewer",
                "connect_timeout": 5,
                "prepare_threshold": None,
                "autocommit": True,
            },
            min_size=1,
            max_size=viewer.pool_size,
            open=False,
            configure=_configure,
            check=ConnectionPool.check_connection,
            reset=_reset,
            name="sql_viewer",
            timeout=max(3.0, viewer.statement_timeout_ms / 1000 * 2),
        )

    def open(self) -> None:
        """Start the pool without waiting: the app starts even while the database is down."""
        self._pool.open(wait=False)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    def run(self, text: str, limit: int | None = None) -> QueryResult:
        """Run one user statement; at most min(limit, row_cap) rows, `truncated` if cut."""
        try:
            statement = check_read_statement(text)
        except QueryRefused as exc:
            raise QueryFailed(exc.message, kind="refused", position=exc.position) from None
        cap = min(limit or self.viewer.row_cap, self.viewer.row_cap)
        started = time.perf_counter()
        with self._slot(), self._connection() as conn:
            try:
                columns, oids, (rows, reason, cut) = self._fetch_statement(conn, statement, cap)
            except psycopg.Error as exc:
                raise self._translate(exc, statement) from None
            try:
                types = self._type_names(conn, oids)
            except psycopg.Error as exc:
                raise self._translate(exc, None) from None
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        return QueryResult(columns, types, rows, reason is not None, elapsed_ms, reason, cut)

    def read(
        self,
        query: sql.Composable | str,
        params: Sequence[Any] | None = None,
        cap: int | None = None,
    ) -> QueryResult:
        """Run the viewer's own catalogue SQL under the same transaction and limits."""
        cap = cap or self.viewer.row_cap
        started = time.perf_counter()
        with self._slot(), self._connection() as conn:
            try:
                with conn.transaction(force_rollback=True), conn.cursor() as cur:
                    cur.execute(self._set_limits)
                    with closing(cur.stream(query, params)) as stream:
                        rows, reason, cut = self._collect(stream, cap)
                    if cur.description is None:  # no row came: ask again for the columns
                        cur.execute(query, params)
                    description = cur.description or []
                types = self._type_names(conn, [col.type_code for col in description])
            except psycopg.Error as exc:
                raise self._translate(exc, None) from None
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        columns = [col.name for col in description]
        return QueryResult(columns, types, rows, reason is not None, elapsed_ms, reason, cut)

    def ping(self, wait_s: float = 2.0) -> None:
        """`SELECT 1` through the pool; raises `QueryFailed` when the database is unreachable."""
        with self._connection(wait_s) as conn:
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as exc:
                raise self._translate(exc, None) from None

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One of `viewer.max_queries_in_flight` places; QueryFailed (429) when all are taken."""
        if not self._slots.acquire(blocking=False):
            raise QueryFailed(
                f"the viewer is already running {self.viewer.max_queries_in_flight} queries "
                "(viewer.max_queries_in_flight); retry in a moment",
                status=429,
                kind="busy",
            )
        try:
            yield
        finally:
            self._slots.release()

    def _collect(
        self, stream: Iterable[tuple[Any, ...]], cap: int
    ) -> tuple[list[tuple[Any, ...]], str | None, int]:
        """(rows, truncated_reason, cells cut): at most `cap` rows, cells cut to
        max_cell_bytes, rows only while they fit max_result_bytes. Stops reading early."""
        budget, max_cell = self.viewer.max_result_bytes, self.viewer.max_cell_bytes
        rows: list[tuple[Any, ...]] = []
        used = cut = 0
        for row in stream:
            if len(rows) == cap:
                return rows, ROW_CAP, cut
            fitted, size, row_cut = [], 0, 0
            for value in row:
                value, value_size, was_cut = fit_cell(value, max_cell)
                fitted.append(value)
                size += value_size
                row_cut += was_cut
            if used + size > budget:
                return rows, MAX_RESULT_BYTES, cut
            rows.append(tuple(fitted))
            used += size
            cut += row_cut
        return rows, (MAX_CELL_BYTES if cut else None), cut

    @contextmanager
    def _connection(self, wait_s: float | None = None) -> Iterator[psycopg.Connection]:
        try:
            conn = self._pool.getconn(timeout=wait_s or self._pool.timeout)
        except PoolTimeout:
            raise _unavailable() from None
        try:
            yield conn
        finally:
            # putconn rolls back, runs DISCARD ALL, and drops a broken connection.
            self._pool.putconn(conn)

    def _fetch_statement(
        self, conn: psycopg.Connection, statement: Statement, cap: int
    ) -> tuple[list[str], list[int], tuple[list[tuple[Any, ...]], str | None, int]]:
        wrap = statement.keyword != "EXPLAIN"  # EXPLAIN output is small and cannot be wrapped
        text = statement.text
        if wrap:
            text = WRAP_PREFIX + text + WRAP_SUFFIX.format(limit=cap + 1)
        with conn.transaction(force_rollback=True):
            conn.execute(self._set_limits)
            with conn.cursor() as cursor:
                # stream() always uses the extended protocol: one statement at most.
                with closing(cursor.stream(text.encode())) as stream:
                    collected = self._collect(stream, cap)
                if cursor.description is None and wrap:
                    # No row came, so no columns either: LIMIT 0 describes without running.
                    empty = WRAP_PREFIX + statement.text + WRAP_SUFFIX.format(limit=0)
                    with conn.pipeline():
                        cursor.execute(empty.encode())
                description = cursor.description or []
        return [c.name for c in description], [c.type_code for c in description], collected

    def _type_names(self, conn: psycopg.Connection, oids: list[int]) -> list[str]:
        names = {}
        for oid in oids:
            if info := conn.adapters.types.get(oid):
                names[oid] = f"{info.name}[]" if oid == info.array_oid else info.name
        unknown = sorted({oid for oid in oids if oid not in names})
        if unknown:
            with conn.transaction(force_rollback=True), conn.cursor() as cur:
                cur.execute(
                    "SELECT oid::int, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)",
                    [unknown],
                )
                names.update(dict(cur.fetchall()))
        return [names.get(oid, f"oid {oid}") for oid in oids]

    def _translate(self, exc: psycopg.Error, statement: Statement | None) -> QueryFailed:
        limits = self.viewer
        if isinstance(exc, errors.QueryCanceled):
            message = str(exc.diag.message_primary or exc)
            if "statement timeout" in message:
                return QueryFailed(
                    f"query cancelled: it ran longer than the statement_timeout of "
                    f"{limits.statement_timeout_ms} ms (viewer.statement_timeout_ms); "
                    "add filters or a LIMIT, or aggregate in a narrower time range",
                    kind="timeout",
                    sqlstate=exc.sqlstate,
                )
            return QueryFailed(f"query cancelled: {message}", kind="timeout", sqlstate=exc.sqlstate)
        if isinstance(exc, errors.LockNotAvailable):
            return QueryFailed(
                f"query cancelled: it waited longer than the lock_timeout of "
                f"{limits.lock_timeout_ms} ms (viewer.lock_timeout_ms) for a lock another "
                "session holds (a migration?); try again shortly",
                kind="timeout",
                sqlstate=exc.sqlstate,
            )
        if isinstance(exc, errors.IdleInTransactionSessionTimeout):
            return QueryFailed(
                f"the session was closed by idle_in_transaction_session_timeout "
                f"({limits.idle_in_transaction_timeout_ms} ms); run the query again",
                kind="timeout",
                sqlstate=exc.sqlstate,
            )
        if exc.sqlstate and not isinstance(exc, psycopg.OperationalError | errors.AdminShutdown):
            message = str(exc.diag.message_primary or "the database refused the query")
            position = _user_position(exc.diag.statement_position, statement)
            if statement is not None and position is not None:
                end = statement.start + len(statement.text) + 1
                if position > end:  # the parser stumbled on the wrapper: the text ended early
                    position = end
                    if isinstance(exc, errors.SyntaxError):
                        message = "syntax error at end of input"
            return QueryFailed(
                message, position=position, sqlstate=exc.sqlstate, hint=exc.diag.message_hint
            )
        if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return QueryFailed(f"the viewer could not read a value of the result: {exc}")
        logger.warning("viewer query failed on the connection: %s", exc)
        return _unavailable()


def _unavailable() -> QueryFailed:
    return QueryFailed(
        "the database is unavailable or the connection was closed; retry, and check "
        "`openpipe status` and the viewer log if it persists",
        status=503,
        kind="unavailable",
    )


def _user_position(position: str | None, statement: Statement | None) -> int | None:
    """Map PostgreSQL's 1-based position in what was sent to one in the user's text."""
    if not position or not position.isdigit() or statement is None:
        return None
    sent_prefix = 0 if statement.keyword == "EXPLAIN" else len(WRAP_PREFIX)
    mapped = int(position) - sent_prefix
    return mapped + statement.start if mapped >= 1 else None


class _DateFallbackLoader(DateLoader):
    """Dates Python cannot hold (infinity, BC, year > 9999) stay PostgreSQL's text."""

    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode()


class _TimestampFallbackLoader(TimestampLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode()


class _TimestamptzFallbackLoader(TimestamptzLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode()


def _configure(conn: psycopg.Connection) -> None:
    conn.read_only = True
    conn.adapters.register_loader("date", _DateFallbackLoader)
    conn.adapters.register_loader("timestamp", _TimestampFallbackLoader)
    conn.adapters.register_loader("timestamptz", _TimestamptzFallbackLoader)
    # Months have no fixed length: show intervals as PostgreSQL writes them.
    conn.adapters.register_loader("interval", TextLoader)


def _reset(conn: psycopg.Connection) -> None:
    conn.execute("DISCARD ALL")
