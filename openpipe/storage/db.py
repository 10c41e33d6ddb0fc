"""Small psycopg 3 helpers: connecting, advisory locks, binary COPY, transient-error test."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

from openpipe.config import Settings

log = logging.getLogger(__name__)

# SQLSTATE classes/codes that mean "try again later", not "this data is bad":
# connection exceptions, operator intervention (shutdown), insufficient resources,
# serialization failure and deadlock.
_TRANSIENT_PREFIXES = ("08", "57P", "53", "58")
_TRANSIENT_CODES = {"40001", "40P01", "55P03"}


def connect(settings: Settings, *, application_name: str = "openpipe", **kwargs: Any):
    """Open a connection as the app role (`database` settings); use it as a context manager."""
    return psycopg.connect(
        settings.database.dsn(),
        application_name=application_name,
        connect_timeout=kwargs.pop("connect_timeout", 10),
        **kwargs,
    )


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` derived from a readable name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def try_advisory_lock(conn: psycopg.Connection, name: str) -> bool:
    """Take the session-level advisory lock `name` if free; False when someone holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (advisory_lock_key(name),)).fetchone()
    return bool(row and row[0])


def advisory_unlock(conn: psycopg.Connection, name: str) -> None:
    """Release a session-level advisory lock taken with `try_advisory_lock`."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (advisory_lock_key(name),))


class UuidBinaryDumper(Dumper):
    """Dumps a UUID given as text (or uuid.UUID) in binary, without building UUID objects."""

    format = Format.BINARY
    oid = pg_types["uuid"].oid

    def dump(self, obj: Any) -> bytes:
        if isinstance(obj, str):
            return bytes.fromhex(obj.replace("-", ""))
        return obj.bytes


class JsonbBinaryDumper(Dumper):
    """Dumps JSON already encoded as bytes (orjson) in jsonb's binary format: version 1 + text."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if isinstance(obj, bytes) else orjson.dumps(obj))


def copy_rows(
    cursor: psycopg.Cursor,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Binary COPY `rows` into `table(columns)`; `types` are the Postgres type names."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    # Only looked up by oid (COPY set_types), so other uuid handling is untouched.
    cursor.adapters.register_dumper(None, UuidBinaryDumper)
    cursor.adapters.register_dumper(None, JsonbBinaryDumper)
    with cursor.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def is_transient(exc: BaseException) -> bool:
    """True when a database error means 'retry later' (server down, restart, deadlock)."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        sqlstate = getattr(exc, "sqlstate", None)
        return (
            sqlstate is None
            or sqlstate.startswith(_TRANSIENT_PREFIXES)
            or (sqlstate in _TRANSIENT_CODES)
        )
    sqlstate = getattr(exc, "sqlstate", None)
    return bool(sqlstate) and (
        sqlstate.startswith(_TRANSIENT_PREFIXES) or sqlstate in _TRANSIENT_CODES
    )
