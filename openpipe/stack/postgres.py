"""PostgreSQL: a private cluster under .openpipe/postgres (or an external server), roles and databases."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from openpipe.config import Settings
from openpipe.stack.process import STATE_DIR, ManagedProcess, StackError, port_open

DATA_DIR = STATE_DIR / "postgres"
SOCKET_DIR = STATE_DIR / "run" / "pgsocket"
# SIGINT is PostgreSQL's fast shutdown: it does not wait for clients such as Dagster to leave.
PROCESS = ManagedProcess(
    "postgres", stop_signal=signal.SIGINT, own_pid_file=DATA_DIR / "postmaster.pid"
)


def find_binary(name: str) -> str:
    """A PostgreSQL server binary from PATH or /usr/lib/postgresql/*/bin (newest first)."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name) or next(iter(candidates), None)
    if not found:
        raise StackError(
            f"PostgreSQL server binary {name!r} not found; install it with "
            "`sudo apt-get install -y postgresql` (or set database.manage_local: false "
            "and point database.host/port at an existing server)."
        )
    return found


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: as root we run it as the `postgres` system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root, PostgreSQL needs the `postgres` system user; install the "
            "server with `apt-get install -y postgresql`, which creates it."
        ) from None
    return "postgres"


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def init_cluster(settings: Settings) -> bool:
    """Run initdb once; True if a new cluster was made."""
    if (DATA_DIR / "PG_VERSION").exists():
        return False
    user = _run_as()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    _chown(DATA_DIR, user)
    _chown(SOCKET_DIR, user)
    superuser = settings.database.superuser
    result = subprocess.run(
        [
            find_binary("initdb"),
            "-D",
            str(DATA_DIR),
            "-U",
            superuser,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        capture_output=True,
        text=True,
        user=user,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        raise StackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
    # The superuser connects only over the private socket; TCP logins need a password.
    (DATA_DIR / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    return True


def start(settings: Settings) -> None:
    db = settings.database
    PROCESS.start(
        [
            find_binary("postgres"),
            "-D",
            str(DATA_DIR),
            "-c",
            f"listen_addresses={db.host}",
            "-c",
            f"port={db.port}",
            "-c",
            f"unix_socket_directories={SOCKET_DIR}",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_connections=200",
            "-c",
            "synchronous_commit=on",
            "-c",
            "max_wal_size=2GB",
        ],
        user=_run_as(),
    )


def superuser_connect(settings: Settings, dbname: str = "postgres") -> psycopg.Connection:
    """Connect as the superuser over the private socket (local cluster only)."""
    return psycopg.connect(
        host=str(SOCKET_DIR),
        port=settings.database.port,
        dbname=dbname,
        user=settings.database.superuser,
        autocommit=True,
        connect_timeout=5,
    )


def ready(settings: Settings) -> tuple[bool, str]:
    db = settings.database
    if not port_open(db.host, db.port):
        return False, f"nothing listening on {db.host}:{db.port}"
    try:
        with psycopg.connect(db.dsn(), connect_timeout=3) as conn:
            size = conn.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()[0]
            version = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.OperationalError as exc:
        return False, str(exc).strip().splitlines()[-1]
    return True, f"PostgreSQL {version}, database {db.name} {size}"


def accepting(settings: Settings) -> tuple[bool, str]:
    try:
        superuser_connect(settings).close()
    except psycopg.OperationalError as exc:
        return False, str(exc).strip().splitlines()[-1]
    return True, "accepting connections"


def bootstrap(settings: Settings) -> None:
    """Create roles and databases (idempotent); the reader can only SELECT app tables."""
    db = settings.database
    with superuser_connect(settings) as conn:
        for role, password in ((db.user, db.password), (db.reader_user, db.reader_password)):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
                )
            )
        for name in (db.name, db.dagster_name):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(db.user)
                    )
                )
        for name in (db.name, db.dagster_name):
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
            )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(db.name), sql.Identifier(db.reader_user)
            )
        )
    with superuser_connect(settings, db.name) as conn:
        grant_reader(conn, settings)


def grant_reader(conn: psycopg.Connection, settings: Settings) -> None:
    """Schema public: owned by the app role, readable (SELECT only) by the reader role."""
    db = settings.database
    app, reader = sql.Identifier(db.user), sql.Identifier(db.reader_user)
    for statement in (
        "ALTER SCHEMA public OWNER TO {app}",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        "GRANT USAGE ON SCHEMA public TO {reader}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {app} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
    ):
        conn.execute(sql.SQL(statement).format(app=app, reader=reader))


def stop() -> bool:
    return PROCESS.stop(timeout_s=60)
