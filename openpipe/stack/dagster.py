"""Dagster: webserver and daemon with DAGSTER_HOME under .openpipe/dagster and storage in Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openpipe.config import REPO_ROOT, Settings
from openpipe.stack.process import STATE_DIR, ManagedProcess, StackError

DAGSTER_HOME = STATE_DIR / "dagster"
WEBSERVER = ManagedProcess("dagster-webserver")
DAEMON = ManagedProcess("dagster-daemon")

_DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType healthy lastHeartbeatTime } } } }
"""


def environment(settings: Settings) -> dict[str, str]:
    """What the Dagster processes need: their home, and the DB connection that dagster.yaml reads."""
    db = settings.database
    return {
        "DAGSTER_HOME": str(DAGSTER_HOME),
        "OPENPIPE__DATABASE__HOST": db.host,
        "OPENPIPE__DATABASE__PORT": str(db.port),
        "OPENPIPE__DATABASE__DAGSTER_NAME": db.dagster_name,
        "OPENPIPE__DATABASE__USER": db.user,
        "OPENPIPE__DATABASE__PASSWORD": db.password,
        "PYTHONUNBUFFERED": "1",
        # Starting a run waits for its process to import Dagster and the code location; on
        # two busy cores that took over the default 60 s, the launch failed and the run
        # worker started anyway for a run already marked failed.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
    }


def prepare() -> None:
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", DAGSTER_HOME / "dagster.yaml")


def executable(name: str) -> str:
    """A console script of this virtual environment (dagster, dagster-webserver, ...)."""
    return str(Path(sys.executable).parent / name)


def fail_orphaned_runs(settings: Settings) -> int:
    """Mark runs left in progress by a stopped daemon as failed, freeing their pool slots.

    `openpipe down` stops the daemon's whole process group, run workers included; without
    this their runs would stay STARTED forever, hold concurrency slots and stall the sensors
    that wait for them. Run retries then relaunch what was cut short.
    """
    import dagster as dg

    prepare()
    os.environ.update(environment(settings))
    in_progress = [
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    with dg.DagsterInstance.get() as instance:
        orphans = instance.get_runs(filters=dg.RunsFilter(statuses=in_progress))
        for run in orphans:
            instance.report_run_failed(
                run, "its worker was stopped with the stack (openpipe down); marked failed"
            )
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return len(orphans)


def materialize(settings: Settings, asset: str) -> None:
    """Materialize one asset in a run recorded in the stack's instance (like the UI's button)."""
    prepare()
    argv = [executable("dagster"), "asset", "materialize", "--select", asset]
    result = subprocess.run(
        [*argv, "-m", "openpipe_dagster.definitions"],
        env={**os.environ, **environment(settings)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise StackError(f"materializing {asset} through Dagster failed:\n{tail}")


def start_webserver(settings: Settings) -> None:
    WEBSERVER.start(
        [
            executable("dagster-webserver"),
            "-h",
            settings.monitoring.host,
            "-p",
            str(settings.monitoring.dagster_port),
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
        env=environment(settings),
    )


def start_daemon(settings: Settings) -> None:
    DAEMON.start(
        [executable("dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
        env=environment(settings),
    )


def url(settings: Settings) -> str:
    return f"http://{settings.monitoring.host}:{settings.monitoring.dagster_port}"


def graphql(settings: Settings, query: str, variables: dict | None = None) -> dict:
    """POST a GraphQL query; a busy webserver's transient 5xx answers are retried twice."""
    for attempt in range(3):
        response = httpx.post(
            f"{url(settings)}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=10,
        )
        if response.status_code < 500 or attempt == 2:
            break
        time.sleep(1)
    response.raise_for_status()
    return response.json()["data"]


def webserver_ready(settings: Settings) -> tuple[bool, str]:
    try:
        response = httpx.get(f"{url(settings)}/server_info", timeout=3)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return False, f"webserver not answering ({type(exc).__name__})"
    return True, f"dagster {response.json().get('dagster_version', '?')}"


def daemon_heartbeat_age(settings: Settings) -> float | None:
    """Seconds since the oldest daemon heartbeat, or None when a daemon has none yet."""
    statuses = graphql(settings, _DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    beats = [s["lastHeartbeatTime"] for s in statuses]
    if not beats or any(b is None for b in beats):
        return None
    return time.time() - min(beats)


def daemon_ready(settings: Settings) -> tuple[bool, str]:
    try:
        age = daemon_heartbeat_age(settings)
    except (httpx.HTTPError, KeyError, TypeError) as exc:
        return False, f"daemon health unknown ({type(exc).__name__})"
    if age is None:
        return False, "waiting for the first daemon heartbeats"
    if age > 60:
        return False, f"last daemon heartbeat {age:.0f} s ago"
    return True, f"daemon heartbeat {age:.0f} s ago"
