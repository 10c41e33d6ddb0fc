"""Applying migrations and keeping native daily partitions (the I/O side of openpipe.storage.migrations)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import psycopg

from openpipe.config import Settings
from openpipe.storage import migrations
from openpipe.storage.db import advisory_lock_key

log = logging.getLogger(__name__)
SCHEMA_LOCK = "openpipe.schema"


class SchemaNotReady(RuntimeError):
    """The sink tables do not exist yet: materialize `database_schema` first."""


@dataclass
class MigrationReport:
    storage: migrations.Storage
    timescaledb_version: str | None
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    time_partitioned: dict[str, str] = field(default_factory=dict)
    reader_granted: bool = False
    # Raw hypertable -> its compression policy ("7 days"); empty on native partitions.
    compression: dict[str, str] = field(default_factory=dict)


def _timescaledb(conn: psycopg.Connection, mode: str) -> str | None:
    """The TimescaleDB version to build on, per `database.timescaledb` (auto | on | off).

    `off` never creates the extension; `auto` creates it when the server has it and uses
    native partitions if that fails; `on` fails with what to do instead.
    """
    if mode == "off":
        log.info("database.timescaledb is off: native partitions")
        return None
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    if row:
        return row[0]
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if not available:
        if mode == "on":
            raise migrations.MigrationError(
                "database.timescaledb is 'on' but this PostgreSQL server has no timescaledb "
                "extension; install TimescaleDB for it (README: TimescaleDB) or set "
                "database.timescaledb to 'auto' or 'off'"
            )
        log.info("TimescaleDB is not installed on this server; using native partitions")
        return None
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        if mode == "on":
            raise migrations.MigrationError(
                f"database.timescaledb is 'on' but CREATE EXTENSION timescaledb failed ({exc}); "
                "a superuser must create it (the local stack's bootstrap does), and the server "
                "must preload it (shared_preload_libraries = 'timescaledb')"
            ) from None
        log.warning("CREATE EXTENSION timescaledb failed (%s); using native partitions", exc)
        return None
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    return row[0] if row else None


def _compress_raw_tables(conn: psycopg.Connection, settings: Settings) -> dict[str, str]:
    """Compression on the raw hypertables, segmented by device, after compress_after_days.

    Kept in step with config on every run (like the grants): a changed
    `database.compress_after_days` replaces the policy; settings are set once.
    """
    from openpipe.sinks.specs import SINKS  # the raw tables are the raw topics' sinks

    after_days = settings.database.compress_after_days
    after = f"{after_days} days"
    policies = {}
    for spec in SINKS.values():
        if spec.family is None:
            continue
        enabled, current = conn.execute(
            "SELECT h.compression_enabled, j.config ->> 'compress_after' "
            "FROM timescaledb_information.hypertables h "
            "LEFT JOIN timescaledb_information.jobs j ON j.hypertable_schema = h.hypertable_schema "
            " AND j.hypertable_name = h.hypertable_name AND j.proc_name = 'policy_compression' "
            "WHERE h.hypertable_schema = current_schema() AND h.hypertable_name = %s",
            (spec.table,),
        ).fetchone() or (None, None)
        if enabled is None:
            continue  # not a hypertable (made before TimescaleDB was there)
        if not enabled:
            conn.execute(
                migrations.compression_settings_sql(
                    spec.table, segment_by="device_id", order_by=spec.time_column
                )
            )
        if current != after:
            for statement in migrations.compression_policy_sql(spec.table, after_days):
                conn.execute(statement)
        policies[spec.table] = after
    return policies


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone())


def apply_migrations(
    conn: psycopg.Connection, settings: Settings, *, today: date | None = None
) -> MigrationReport:
    """Apply pending migrations in one transaction (serialised by an advisory lock)."""
    db = settings.database
    today = today or datetime.now(UTC).date()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(SCHEMA_LOCK),))
        conn.execute(migrations.SCHEMA_MIGRATIONS_DDL)
        done = {
            version: (checksum, storage)
            for version, checksum, storage in conn.execute(
                "SELECT version, checksum, storage FROM schema_migrations ORDER BY version"
            )
        }
        version = _timescaledb(conn, db.timescaledb)
        recorded = {storage for _, storage in done.values()}
        # Once tables exist their storage path is fixed; a later TimescaleDB install
        # does not convert them (that needs a data migration).
        storage: migrations.Storage = (
            recorded.pop()
            if recorded
            else (migrations.TIMESCALEDB if version else migrations.NATIVE)
        )
        report = MigrationReport(storage=storage, timescaledb_version=version)
        for migration in migrations.list_migrations():
            label = f"{migration.version:04d}_{migration.name}"
            report.tables += migrations.created_tables(migration.sql)
            for target in migrations.time_partitioned_tables(migration.sql):
                report.time_partitioned[target.table] = target.column
            if migration.version in done:
                if not migration.accepts(done[migration.version][0]):
                    raise migrations.MigrationError(
                        f"migration {label} changed after it was applied; put schema changes "
                        "in a new migration file instead of editing an applied one"
                    )
                report.already_applied.append(label)
                continue
            conn.execute(migrations.render_migration(migration.sql, storage))
            for target in migrations.time_partitioned_tables(migration.sql):
                _convert(conn, target, storage, settings, version, today)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, storage) "
                "VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, migration.checksum, storage),
            )
            report.applied.append(label)
            log.info("applied migration %s (%s storage)", label, storage)
        if storage == migrations.TIMESCALEDB:
            report.compression = _compress_raw_tables(conn, settings)
        if _role_exists(conn, db.reader_user):
            for statement in migrations.grant_sql(report.tables, db.reader_user):
                conn.execute(statement)
            report.reader_granted = True
        else:
            log.warning("role %s does not exist; no SELECT grants made", db.reader_user)
    return report


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """Labels of the migration files not yet recorded in schema_migrations."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    done = (
        {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        if exists
        else set()
    )
    return [
        f"{mig.version:04d}_{mig.name}"
        for mig in migrations.list_migrations()
        if mig.version not in done
    ]


def _convert(
    conn: psycopg.Connection,
    target: migrations.TimePartitioning,
    storage: migrations.Storage,
    settings: Settings,
    version: str | None,
    today: date,
) -> None:
    db = settings.database
    if storage == migrations.TIMESCALEDB:
        for statement in migrations.hypertable_sql(
            target,
            chunk_interval_hours=db.chunk_interval_hours,
            retention_days=db.retention_days,
            timescaledb_version=migrations.parse_version(version or "2.13"),
        ):
            conn.execute(statement)
    else:
        for day in migrations.days_ahead(today, db.partitions_ahead_days):
            conn.execute(migrations.create_partition_sql(target.table, day))


def read_storage(conn: psycopg.Connection) -> migrations.Storage:
    """The storage path recorded by `apply_migrations`; SchemaNotReady if none ran yet."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT storage FROM schema_migrations LIMIT 1").fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    if not row:
        raise SchemaNotReady(
            "schema_migrations is empty or missing: materialize the database_schema asset "
            "(or run `uv run python -m openpipe.sinks migrate`) before draining"
        )
    return row[0]


def existing_partitions(conn: psycopg.Connection, table: str) -> list[str]:
    """Names of the partitions attached to `table`."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            (table,),
        )
    ]


def ensure_partitions(
    conn: psycopg.Connection, table: str, days: Iterable[date], known: set[date]
) -> list[str]:
    """Create the daily partitions of `table` missing for `days`, each in its own transaction."""
    created = []
    for day in sorted(set(days) - known):
        with conn.transaction():
            conn.execute(migrations.create_partition_sql(table, day))
        known.add(day)
        created.append(migrations.partition_name(table, day))
    return created


def maintain_partitions(
    conn: psycopg.Connection, settings: Settings, *, today: date | None = None
) -> dict[str, dict[str, list[str]]]:
    """Native path: create partitions ahead, drop those past retention. Table -> created/dropped."""
    db = settings.database
    today = today or datetime.now(UTC).date()
    if read_storage(conn) != migrations.NATIVE:
        return {}
    result: dict[str, dict[str, list[str]]] = {}
    for migration in migrations.list_migrations():
        for target in migrations.time_partitioned_tables(migration.sql):
            existing = existing_partitions(conn, target.table)
            known = {d for d in (migrations.partition_day(target.table, n) for n in existing) if d}
            created = ensure_partitions(
                conn, target.table, migrations.days_ahead(today, db.partitions_ahead_days), known
            )
            dropped = migrations.expired_partitions(
                target.table, existing, today, db.retention_days
            )
            for name in dropped:
                with conn.transaction():
                    conn.execute(migrations.drop_partition_sql(name))
            result[target.table] = {"created": created, "dropped": dropped}
    return result


def storage_label(storage: str | None, version: str | None, hypertables: int) -> str:
    """What `status` and the viewer say about the store, e.g. 'TimescaleDB 2.17.2, 10 hypertables'."""
    if storage == "timescaledb":
        return f"TimescaleDB {version or '(extension missing)'}, {hypertables} hypertables"
    if storage == "native":
        return "native partitions" + (
            f" (TimescaleDB {version} installed but unused)" if version else ""
        )
    return "schema not migrated yet" + (f" (TimescaleDB {version} installed)" if version else "")


def storage_mode(conn: psycopg.Connection) -> str:
    """The storage label of the database `conn` is connected to."""
    row = conn.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), "
        "to_regclass('schema_migrations') IS NOT NULL"
    ).fetchone()
    version, migrated = row
    storage = None
    if migrated:
        found = conn.execute("SELECT storage FROM schema_migrations LIMIT 1").fetchone()
        storage = found[0] if found else None
    hypertables = 0
    if version:
        hypertables = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        ).fetchone()[0]
    return storage_label(storage, version, hypertables)
