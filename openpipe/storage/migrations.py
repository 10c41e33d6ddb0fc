"""Versioned migrations and the storage DDL built from them (pure: no I/O besides reading files).

Migrations live in `sql/migrations/NNNN_name.sql`. A `CREATE TABLE` followed by the
marker `/* time_partitioned(<column>) */` is a time-series table: on the TimescaleDB
path it becomes a hypertable with chunk interval and retention from config; on the
native path the marker becomes `PARTITION BY RANGE (<column>)` with one partition per
UTC day. Both paths keep the same table names, columns and unique keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from openpipe.config import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
Storage = Literal["timescaledb", "native"]
TIMESCALEDB: Storage = "timescaledb"
NATIVE: Storage = "native"

_FILE_RE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CREATE_RE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_MARKER_RE = re.compile(r"/\*\s*time_partitioned\(\s*([a-z_][a-z0-9_]*)\s*\)\s*\*/")
# The new create_hypertable(relation, by_range(...)) form exists since TimescaleDB 2.13.
_BY_RANGE_SINCE = (2, 13)

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    storage     text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
""".strip()


class MigrationError(RuntimeError):
    """A migration file is malformed, or an applied migration was edited afterwards."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text, to detect edits of an already applied migration."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def accepts(self, recorded: str) -> bool:
        """True when `recorded` is this file's checksum or one of its comment-only earlier ones."""
        return recorded == self.checksum or recorded in EARLIER_CHECKSUMS.get(self.version, ())


#: Checksums of applied migrations whose comments (only) were reworded later: their
#: references moved from a design file outside the repository to docs/architecture.md.
#: Databases migrated before that keep the old checksum, which stays valid.
EARLIER_CHECKSUMS: dict[int, tuple[str, ...]] = {
    1: ("51827d79eb1ac18a09fc290070f8c306e13b0c4c6c7a9a1ac504ea67055f9327",),
    2: ("180daf44e0e6a0774858929df60c7e13b5f2a0e009c777709e8febb1984d0092",),
    3: ("e124b46341788c3df0ef122f00ac18b9efd1b994fe491a28fe080df55b9c021f",),
    4: ("610bdf24984895ac10084953c5ef11daab9e761612a3b8e94c95f082185dbca6",),
}


@dataclass(frozen=True, slots=True)
class TimePartitioning:
    table: str
    column: str


def _identifier(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise MigrationError(f"{name!r} is not a plain lower-case SQL identifier")
    return name


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in `directory`, ordered by version; malformed names are an error."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: name migrations NNNN_lower_snake_name.sql")
        migrations.append(
            Migration(int(match["version"]), match["name"], path.read_text(encoding="utf-8"))
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number: {versions}")
    return migrations


def created_tables(sql: str) -> list[str]:
    """Names of the tables a migration creates, in order."""
    return [_identifier(name) for name in _CREATE_RE.findall(sql)]


def time_partitioned_tables(sql: str) -> list[TimePartitioning]:
    """The time-series tables of a migration: each CREATE TABLE carrying the marker."""
    found: list[TimePartitioning] = []
    creates = list(_CREATE_RE.finditer(sql))
    for index, create in enumerate(creates):
        end = creates[index + 1].start() if index + 1 < len(creates) else len(sql)
        statement_end = sql.find(";", create.end(), end)
        body = sql[create.end() : statement_end if statement_end != -1 else end]
        marker = _MARKER_RE.search(body)
        if marker:
            found.append(TimePartitioning(create.group(1), _identifier(marker.group(1))))
    return found


def render_migration(sql: str, storage: Storage) -> str:
    """The migration's DDL for a storage path (markers become PARTITION BY on native)."""
    if storage == NATIVE:
        return _MARKER_RE.sub(lambda m: f"PARTITION BY RANGE ({m.group(1)})", sql)
    return _MARKER_RE.sub("", sql)


def _interval(hours: int | None = None, days: int | None = None) -> str:
    return f"INTERVAL '{hours} hours'" if hours is not None else f"INTERVAL '{days} days'"


def parse_version(text: str) -> tuple[int, int]:
    """'2.17.2' -> (2, 17); used to pick the create_hypertable signature."""
    parts = re.findall(r"\d+", text)
    if len(parts) < 2:
        raise MigrationError(f"cannot read a TimescaleDB version from {text!r}")
    return int(parts[0]), int(parts[1])


def hypertable_sql(
    target: TimePartitioning,
    *,
    chunk_interval_hours: int,
    retention_days: int,
    timescaledb_version: tuple[int, int] = _BY_RANGE_SINCE,
) -> list[str]:
    """create_hypertable + add_retention_policy for one table (both idempotent)."""
    table, column = _identifier(target.table), _identifier(target.column)
    chunk = _interval(hours=chunk_interval_hours)
    if timescaledb_version >= _BY_RANGE_SINCE:
        create = (
            f"SELECT create_hypertable('{table}', by_range('{column}', {chunk}), "
            "if_not_exists => TRUE)"
        )
    else:
        create = (
            f"SELECT create_hypertable('{table}', '{column}', chunk_time_interval => {chunk}, "
            "if_not_exists => TRUE)"
        )
    retention = (
        f"SELECT add_retention_policy('{table}', drop_after => "
        f"{_interval(days=retention_days)}, if_not_exists => TRUE)"
    )
    return [create, retention]


def compression_settings_sql(table: str, *, segment_by: str, order_by: str) -> str:
    """Turn on TimescaleDB compression (columnstore) for a hypertable, one segment per device."""
    name, segment, order = _identifier(table), _identifier(segment_by), _identifier(order_by)
    return (
        f"ALTER TABLE {name} SET (timescaledb.compress, "
        f"timescaledb.compress_segmentby = '{segment}', "
        f"timescaledb.compress_orderby = '{order} DESC')"
    )


def compression_policy_sql(table: str, compress_after_days: int) -> list[str]:
    """Replace the hypertable's compression policy with one after `compress_after_days`."""
    name = _identifier(table)
    return [
        f"SELECT remove_compression_policy('{name}', if_exists => TRUE)",
        f"SELECT add_compression_policy('{name}', compress_after => "
        f"{_interval(days=compress_after_days)}, if_not_exists => TRUE)",
    ]


def grant_sql(tables: Iterable[str], reader: str) -> list[str]:
    """Give the read-only role SELECT and nothing else on each table."""
    role = _identifier(reader)
    statements = []
    for table in tables:
        name = _identifier(table)
        statements.append(f"REVOKE ALL ON TABLE {name} FROM {role}")
        statements.append(f"GRANT SELECT ON TABLE {name} TO {role}")
    return statements


def partition_name(table: str, day: date) -> str:
    """Name of the native daily partition of `table` holding `day` (UTC)."""
    return f"{_identifier(table)}_p{day:%Y%m%d}"


def partition_day(table: str, name: str) -> date | None:
    """The day a partition name stands for, or None if it is not one of ours."""
    match = re.fullmatch(rf"{re.escape(table)}_p(\d{{8}})", name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day as aware datetimes."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def create_partition_sql(table: str, day: date) -> str:
    """DDL for the daily partition of `table` covering `day` (idempotent)."""
    start, end = day_bounds(day)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF "
        f"{_identifier(table)} FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def days_ahead(today: date, ahead_days: int) -> list[date]:
    """Today and the next `ahead_days` days: the partitions kept ready in advance."""
    return [today + timedelta(days=offset) for offset in range(ahead_days + 1)]


def expired_partitions(
    table: str, names: Iterable[str], today: date, retention_days: int
) -> list[str]:
    """Our partitions of `table` whose whole day is older than the retention window."""
    cutoff = today - timedelta(days=retention_days)
    expired = []
    for name in names:
        day = partition_day(table, name)
        if day is not None and day < cutoff:
            expired.append(name)
    return sorted(expired)


def drop_partition_sql(name: str) -> str:
    """DDL dropping one partition (it is detached implicitly)."""
    return f"DROP TABLE IF EXISTS {_identifier(name)}"
