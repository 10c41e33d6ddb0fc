"""The sink's one transaction: rows, dead letters and offsets.

Everything a batch changes commits together, so a crash at any point either leaves
the previous state (the batch is re-read from the stored offsets) or the new one.

Dedupe rule of the raw sinks (one rule, whatever the run boundaries): `event_id` alone
names an event. The first message with an event_id that a sink stores makes the row; a
later one with the same event_id, whatever its `event_time` or other fields, is a
duplicate: no row, no dead letter, counted in the run's duplicates. Within a run the
batch's `seen` set applies the rule; across runs `write_batch` first looks the chunk's
event_ids up in the table, because the table key `(event_id, event_time)` alone would
store a second row for the same event_id at another time.

Rows of append-only sinks are then COPYed straight into the table inside a savepoint:
almost always no event is stored yet, and COPY's multi-row insert is the fastest write
there is. A chunk that met stored events (a replay), or whose COPY the unique index
stops anyway, goes the safe way: COPY into a temp staging table, then
`INSERT ... ON CONFLICT`. Upsert sinks always go the safe way.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

import psycopg
from psycopg import sql

from openpipe.sinks.specs import DEAD_LETTER_COLUMNS, SinkSpec
from openpipe.storage.db import copy_rows

log = logging.getLogger(__name__)

#: Test seam: name a point (before_write, after_write, after_commit) and the process
#: SIGKILLs itself there, to prove a crash at that point loses and duplicates nothing.
CRASH_ENV = "OPENPIPE_SINK_CRASH_AT"


class OffsetConflict(RuntimeError):
    """Stored offsets moved under us: another writer drained the same partitions."""


def crash_point(name: str) -> None:
    """SIGKILL this process if $OPENPIPE_SINK_CRASH_AT names this point (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        log.warning("crash point %s reached: killing process %d", name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class WriteResult:
    rows_written: int  # inserted, or for upserts inserted + changed
    conflicts: int  # rows whose key already existed unchanged (duplicates / replays)
    dead_letters_written: int
    copied_directly: bool  # False when the rows went through staging + ON CONFLICT


def staging_table(spec: SinkSpec) -> str:
    return f"_stage_{spec.table}"


def _insert_statement(spec: SinkSpec) -> sql.Composed:
    columns = sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
    key = sql.SQL(", ").join(map(sql.Identifier, spec.key))
    if not spec.upsert:
        action = sql.SQL("DO NOTHING")
    else:
        changing = [*spec.value_columns, "kafka_topic", "kafka_partition", "kafka_offset"]
        action = sql.SQL("DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in changing
            ),
            sql.SQL(", ").join(
                sql.SQL("{}.{}").format(sql.Identifier(spec.table), sql.Identifier(c))
                for c in spec.value_columns
            ),
            sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in spec.value_columns
            ),
        )
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) {action}"
    ).format(
        table=sql.Identifier(spec.table),
        cols=columns,
        stage=sql.Identifier(staging_table(spec)),
        key=key,
        action=action,
    )


_DEAD_LETTER_INSERT = sql.SQL(
    "INSERT INTO dead_letters ({}) VALUES ({}) "
    "ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING"
).format(
    sql.SQL(", ").join(map(sql.Identifier, DEAD_LETTER_COLUMNS)),
    sql.SQL(", ").join(sql.Placeholder() * len(DEAD_LETTER_COLUMNS)),
)

# The WHERE clause fences a concurrent writer: the update only applies if the stored
# offset is still the one this batch started from.
_OFFSET_UPSERT = (
    "INSERT INTO sink_offsets AS o (sink, kafka_topic, kafka_partition, next_offset) "
    "VALUES (%(sink)s, %(topic)s, %(partition)s, %(next)s) "
    "ON CONFLICT (sink, kafka_topic, kafka_partition) DO UPDATE "
    "SET next_offset = EXCLUDED.next_offset, updated_at = now() "
    "WHERE o.next_offset = %(start)s"
)


def read_offsets(conn: psycopg.Connection, sink: str, topic: str) -> dict[int, int]:
    """Partition -> next offset to read, as stored for this sink and topic."""
    rows = conn.execute(
        "SELECT kafka_partition, next_offset FROM sink_offsets "
        "WHERE sink = %s AND kafka_topic = %s",
        (sink, topic),
    ).fetchall()
    return dict(rows)


def write_batch(
    conn: psycopg.Connection,
    spec: SinkSpec,
    *,
    sink: str,
    topic: str,
    rows: list[tuple],
    dead_letters: list[tuple],
    start_offsets: dict[int, int | None],
    next_offsets: dict[int, int],
    try_direct: bool = True,
) -> WriteResult:
    """Write one batch and advance its offsets in a single transaction (conn in autocommit).

    `try_direct=False` skips the direct COPY attempt (for a run that already met a
    conflict); upsert sinks never try it.
    """
    inserted = dead = 0
    direct = False
    offered = len(rows)
    with conn.transaction(), conn.cursor() as cur:
        if rows and not spec.upsert:
            fresh = _without_stored_events(cur, spec, rows)
            # A chunk that met stored events is a replay: its rows go the safe way.
            try_direct = try_direct and len(fresh) == len(rows)
            rows = fresh
        if rows:
            direct = try_direct and not spec.upsert and _copy_direct(cur, spec, rows)
            inserted = len(rows) if direct else _insert_via_staging(cur, spec, rows)
        if dead_letters:
            cur.executemany(_DEAD_LETTER_INSERT, dead_letters)
            dead = len(dead_letters)
        for partition, next_offset in sorted(next_offsets.items()):
            cur.execute(
                _OFFSET_UPSERT,
                {
                    "sink": sink,
                    "topic": topic,
                    "partition": partition,
                    "next": next_offset,
                    "start": start_offsets.get(partition),
                },
            )
            if cur.rowcount != 1:
                raise OffsetConflict(
                    f"sink_offsets for {sink} {topic}[{partition}] is no longer "
                    f"{start_offsets.get(partition)}: another run wrote this partition; "
                    "this batch was rolled back and will be re-read"
                )
        crash_point("after_write")
    return WriteResult(
        rows_written=inserted,
        conflicts=offered - inserted,
        dead_letters_written=dead,
        copied_directly=direct,
    )


def _without_stored_events(cur: psycopg.Cursor, spec: SinkSpec, rows: list[tuple]) -> list[tuple]:
    """`rows` less those whose event_id the table already holds, at any event_time."""
    index = spec.column_names.index("event_id")
    cur.execute(
        sql.SQL("SELECT event_id::text FROM {} WHERE event_id = ANY(%s::uuid[])").format(
            sql.Identifier(spec.table)
        ),
        ([row[index] for row in rows],),
    )
    stored = {event_id for (event_id,) in cur}
    if not stored:
        return rows
    return [row for row in rows if row[index].lower() not in stored]


def _copy_direct(cur: psycopg.Cursor, spec: SinkSpec, rows: list[tuple]) -> bool:
    """COPY rows straight into the table; False (and nothing written) if a key exists."""
    try:
        with cur.connection.transaction():  # a savepoint: a duplicate undoes only this COPY
            copy_rows(cur, spec.table, spec.column_names, spec.column_types, rows)
    except psycopg.errors.UniqueViolation:
        log.info("%s: a key of this chunk is already stored; writing it via staging", spec.table)
        return False
    return True


def _insert_via_staging(cur: psycopg.Cursor, spec: SinkSpec, rows: list[tuple]) -> int:
    """COPY rows into a temp staging table, then INSERT ... ON CONFLICT; returns rows changed."""
    stage = staging_table(spec)
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(sql.Identifier(stage), sql.Identifier(spec.table))
    )
    copy_rows(cur, stage, spec.column_names, spec.column_types, rows)
    cur.execute(_insert_statement(spec))
    return cur.rowcount
