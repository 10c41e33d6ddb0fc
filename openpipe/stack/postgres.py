"""PostgreSQL: a private cluster under .openpipe/postgres (or an external server), roles and databases.

As root the server runs as the `postgres` system user. When that user cannot reach the
checkout (a clone under /root or in a `mktemp -d` directory, mode 0700), the cluster and
its socket live under the `postgres` user's home instead, in a directory named after the
checkout, and `.openpipe/postgres` and `.openpipe/run/pgsocket` are symlinks to them, so
every later `up` finds the same cluster again.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from openpipe.config import REPO_ROOT, DatabaseSettings, Settings
from openpipe.stack.process import STATE_DIR, ManagedProcess, StackError, port_open
from openpipe.storage.schema import storage_mode

DATA_DIR = STATE_DIR / "postgres"
BOOTSTRAP_SQL = REPO_ROOT / "sql" / "bootstrap" / "roles_and_databases.sql"
SOCKET_DIR = STATE_DIR / "run" / "pgsocket"
TIMESCALEDB_LIBRARY = "timescaledb.so"
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


def _can_reach(user: str, path: Path) -> bool:
    """True when `user` may enter `path` (every parent directory must let it through)."""
    probe = subprocess.run(["test", "-x", str(path)], user=user, cwd="/", check=False)
    return probe.returncode == 0


def external_cluster_dir(user: str, state_dir: Path = STATE_DIR) -> Path:
    """Where the cluster of this checkout lives when `user` cannot reach the checkout."""
    home = Path(pwd.getpwnam(user).pw_dir)
    real = state_dir.resolve()
    digest = hashlib.sha256(str(real).encode()).hexdigest()[:12]
    return home / "openpipe" / f"{real.parent.name or 'root'}-{digest}"


def _place_cluster(user: str | None) -> None:
    """As root, keep the cluster where the `postgres` user can reach it (see module doc)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    SOCKET_DIR.parent.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    if DATA_DIR.is_symlink():  # placed by an earlier `up`: relink the socket if it went
        _link_cluster(user, DATA_DIR.resolve().parent)
        return
    if _can_reach(user, STATE_DIR):
        return
    if (DATA_DIR / "PG_VERSION").exists():
        raise StackError(
            f"as root, PostgreSQL runs as the `{user}` user, which can no longer enter "
            f"{STATE_DIR}, where this checkout's cluster is; `chmod o+x` its parent "
            "directories again (or `make purge` to start over under that user's home)."
        )
    outside = external_cluster_dir(user)
    home = outside.parent.parent
    if not _can_reach(user, home):
        raise StackError(
            f"as root, PostgreSQL runs as the `{user}` user, which cannot enter {STATE_DIR} "
            f"(a parent directory is private, e.g. mode 0700) and has no usable home "
            f"directory ({home}) to keep the cluster in instead. Clone into a directory "
            "others can traverse (e.g. /srv or /opt), `chmod o+x` the parent directories, "
            "or run `make up` as a normal user."
        )
    _link_cluster(user, outside)


def _link_cluster(user: str, outside: Path) -> None:
    for path in (outside.parent, outside, outside / "postgres", outside / "socket"):
        path.mkdir(mode=0o700, exist_ok=True)
        _chown(path, user)
    for link, target in ((DATA_DIR, outside / "postgres"), (SOCKET_DIR, outside / "socket")):
        if link.exists() and not link.is_symlink():
            link.rmdir()  # an empty leftover of an earlier attempt
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)


def external_dir() -> Path | None:
    """The cluster's directory outside the checkout, when it lives there (see module doc)."""
    return DATA_DIR.resolve().parent if DATA_DIR.is_symlink() else None


def init_cluster(settings: Settings) -> bool:
    """Run initdb once; True if a new cluster was made."""
    user = _run_as()
    _place_cluster(user)
    SOCKET_DIR.mkdir(parents=True, exist_ok=True)  # also when only .openpipe/run went
    _chown(SOCKET_DIR, user)
    if (DATA_DIR / "PG_VERSION").exists():
        return False
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _chown(DATA_DIR, user)
    superuser = settings.database.superuser
    result = subprocess.run(
        [
            find_binary("initdb"),
            "-D",
            str(DATA_DIR.resolve()),
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
        cwd="/",
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(DATA_DIR.resolve(), ignore_errors=True)
        raise StackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
    # The superuser connects only over the private socket; TCP logins need a password.
    (DATA_DIR / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
    )
    return True


def library_dir() -> Path:
    """The server's library directory (`pg_config --pkglibdir` of the binaries in use)."""
    bindir = Path(find_binary("postgres")).resolve().parent
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        result = subprocess.run(
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return Path(result.stdout.strip())
    # Debian ships pg_config with the -dev package; its server libraries sit next to bin/.
    return bindir.parent / "lib"


def timescaledb_installed() -> bool:
    """True when the server binaries in use have the TimescaleDB library."""
    return (library_dir() / TIMESCALEDB_LIBRARY).exists()


def wants_timescaledb(mode: str, installed: bool, where: Path | None = None) -> bool:
    """Whether to preload TimescaleDB for `database.timescaledb: mode`; `on` without it fails."""
    if mode == "on" and not installed:
        raise StackError(
            "database.timescaledb is 'on' but the PostgreSQL server in use has no TimescaleDB "
            f"library ({TIMESCALEDB_LIBRARY} missing in {where or 'its pkglibdir'}); install "
            "TimescaleDB for this PostgreSQL version (README: TimescaleDB), or set "
            "database.timescaledb to 'auto' or 'off'."
        )
    return mode != "off" and installed


def server_options(db: DatabaseSettings, socket_dir: Path, timescaledb: bool) -> list[str]:
    """The `postgres` command-line settings of the local cluster (after `-D datadir`)."""
    settings = {
        "listen_addresses": db.host,
        "port": str(db.port),
        "unix_socket_directories": str(socket_dir),
        "shared_buffers": "256MB",
        "max_connections": "200",
        "synchronous_commit": "on",
        "max_wal_size": "2GB",
    }
    # On the command line, so a cluster made before TimescaleDB was installed gets it too.
    if timescaledb:
        settings["shared_preload_libraries"] = "timescaledb"
        settings["timescaledb.telemetry_level"] = "off"
    argv: list[str] = []
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    return argv


def check_timescaledb(settings: Settings) -> None:
    """Fail early when `database.timescaledb: on` cannot be honoured by the local server."""
    if settings.database.manage_local:
        wants_timescaledb(settings.database.timescaledb, timescaledb_installed(), library_dir())


def has_tables(settings: Settings) -> bool:
    """True once the app database has a schema_migrations table (anything was migrated)."""
    with superuser_connect(settings, settings.database.name) as conn:
        row = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
        return bool(row.fetchone()[0])


def preload_note(settings: Settings) -> str | None:
    """Say so when TimescaleDB is wanted and installed but the running server lacks it."""
    db = settings.database
    if not db.manage_local or not wants_timescaledb(db.timescaledb, timescaledb_installed()):
        return None
    with superuser_connect(settings) as conn:
        if preloads_timescaledb(conn):
            return None
    return (
        "TimescaleDB is installed, but the running PostgreSQL was started without it; "
        "`make down && make up` restarts it with TimescaleDB preloaded"
    )


def start(settings: Settings) -> None:
    db = settings.database
    timescaledb = wants_timescaledb(db.timescaledb, timescaledb_installed(), library_dir())
    PROCESS.start(
        [
            find_binary("postgres"),
            "-D",
            str(DATA_DIR.resolve()),
            *server_options(db, SOCKET_DIR.resolve(), timescaledb),
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


def preloads_timescaledb(conn: psycopg.Connection) -> bool:
    """True when the server was started with TimescaleDB in shared_preload_libraries."""
    value = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    return "timescaledb" in [name.strip() for name in value.split(",")]


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
            storage = storage_mode(conn)
    except psycopg.OperationalError as exc:
        return False, str(exc).strip().splitlines()[-1]
    return True, f"PostgreSQL {version}, database {db.name} {size}, {storage}"


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
        "timescaledb": db.timescaledb,
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
