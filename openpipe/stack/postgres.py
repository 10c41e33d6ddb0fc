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

from openpipe.config import REPO_ROOT, Settings
from openpipe.stack.process import STATE_DIR, ManagedProcess, StackError, port_open

DATA_DIR = STATE_DIR / "postgres"
BOOTSTRAP_SQL = REPO_ROOT / "sql" / "bootstrap" / "roles_and_databases.sql"
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
    """Create roles and databases and set privileges (idempotent), from sql/bootstrap/."""
    db = settings.database
    variables = {
        "app": db.user,
        "app_password": db.password,
        "reader": db.reader_user,
        "reader_password": db.reader_password,
        "app_db": db.name,
        "dagster_db": db.dagster_name,
    }
    argv = [find_binary("psql"), "--no-psqlrc", "--quiet", "-h", str(SOCKET_DIR)]
    argv += ["-p", str(db.port), "-U", db.superuser, "-d", "postgres", "-f", str(BOOTSTRAP_SQL)]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"setting up roles and databases failed: {result.stderr.strip()}")


def stop() -> bool:
    return PROCESS.stop(timeout_s=60)
