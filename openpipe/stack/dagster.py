"""Dagster: code server, webserver and daemon; DAGSTER_HOME under .openpipe/dagster, storage in Postgres.

The code location runs in one long-lived code server (`dagster code-server start`) that
the webserver and the daemon reach over a Unix socket, as in docker-compose.yml. Left to
itself the daemon starts a fresh code server process every 60 s (its workspace refresh),
each paying seconds of CPU to import Dagster and the definitions (docs/architecture.md §7).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from openpipe.config import REPO_ROOT, Settings
from openpipe.stack.process import RUN_DIR, STATE_DIR, ManagedProcess, StackError

DAGSTER_HOME = STATE_DIR / "dagster"
CODE_SERVER = ManagedProcess("dagster-code-server")
WEBSERVER = ManagedProcess("dagster-webserver")
DAEMON = ManagedProcess("dagster-daemon")
#: The code server's socket, and the workspace file that points the webserver and the
#: daemon at it (the repo's workspace.yaml loads the module in-process, for `dagster dev`).
CODE_SOCKET = RUN_DIR / "dagster-code.sock"
WORKSPACE = DAGSTER_HOME / "workspace.yaml"
LOCATION = "openpipe"
DEFINITIONS = "openpipe_dagster.definitions"

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
    server = {"socket": str(CODE_SOCKET), "location_name": LOCATION}
    WORKSPACE.write_text(yaml.safe_dump({"load_from": [{"grpc_server": server}]}))


def executable(name: str) -> str:
    """A console script of this virtual environment (dagster, dagster-webserver, ...)."""
    return str(Path(sys.executable).parent / name)


def fail_orphaned_runs(settings: Settings) -> int:
    """Mark runs left in progress by a stopped code server as failed, freeing their slots.

    Run workers are processes of the code server's group. `openpipe up` calls this only when
    no process of that group is left (after `openpipe down`, or a crash of the whole group):
    then no run can still be in progress, and without this their runs would stay STARTED
    forever, hold concurrency slots and stall the sensors that wait for them. Run retries
    then relaunch what was cut short. A daemon that died alone leaves its runs working.
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


def start_code_server(settings: Settings) -> None:
    CODE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    CODE_SOCKET.unlink(missing_ok=True)  # left by a code server that was killed
    CODE_SERVER.start(
        [
            executable("dagster"),
            "code-server",
            "start",
            "-m",
            DEFINITIONS,
            "-d",
            str(REPO_ROOT),
            "--socket",
            str(CODE_SOCKET),
            "--location-name",
            LOCATION,
            "--log-level",
            "warning",
        ],
        env=environment(settings),
    )


def code_server_ready(settings: Settings) -> tuple[bool, str]:
    """Ready when the code server answers gRPC health checks on its socket."""
    if not CODE_SOCKET.exists():
        return False, f"no socket at {CODE_SOCKET} yet"
    try:
        with grpc.insecure_channel(f"unix:{CODE_SOCKET}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=3
            )
    except grpc.RpcError as exc:
        return False, f"not answering on {CODE_SOCKET} ({exc.code().name})"
    state = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if state != "SERVING":
        return False, f"gRPC health {state}"
    return True, f"serving {DEFINITIONS} on {CODE_SOCKET.name}"


RELOAD_TIMEOUT_S = 180
_RELOAD = """
mutation ($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } }
    ... on Error { message } } }
"""


def reload_code(settings: Settings) -> None:
    """Reload the code location in the code server (the UI's Reload), after a code change.

    The webserver has the code server load the definitions again and raises what does not
    load; the daemon takes the new definitions at its next workspace refresh (60 s).
    """
    try:
        # Loading the definitions takes the code server seconds of CPU; on busy cores, more.
        data = graphql(settings, _RELOAD, {"name": LOCATION}, timeout_s=RELOAD_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise StackError(
            f"the Dagster webserver at {url(settings)} did not answer the reload "
            f"({type(exc).__name__}); is the stack up (`openpipe status`)?"
        ) from None
    answer = data["reloadRepositoryLocation"]
    if answer["__typename"] != "WorkspaceLocationEntry":
        raise StackError(f"reloading {LOCATION} failed: {answer.get('message', answer)}")
    loaded = answer["locationOrLoadError"] or {}
    if loaded.get("__typename") == "PythonError":
        raise StackError(f"{DEFINITIONS} does not load:\n{loaded['message']}")
    with contextlib.suppress(FileNotFoundError):  # its code is from now on the latest
        os.utime(CODE_SERVER.pid_file)  # (code_changed_since_start)


#: What the code server imports or reads when it loads the definitions and runs sensors.
CODE_SOURCES = ("openpipe", "openpipe_dagster", "flink_jobs", "simulator", "config")


def code_changed_since_start(root: Path = REPO_ROOT) -> Path | None:
    """A source file newer than the running code server (which still runs the old one).

    After a `git pull`, the old code reading a new config/settings.yaml can reject a key it
    does not know, and every sensor fails until the definitions are loaded again.
    """
    return CODE_SERVER.source_changed_since_start(CODE_SOURCES, root)


def start_webserver(settings: Settings) -> None:
    WEBSERVER.start(
        [
            executable("dagster-webserver"),
            "-h",
            settings.monitoring.host,
            "-p",
            str(settings.monitoring.dagster_port),
            "-w",
            str(WORKSPACE),
        ],
        env=environment(settings),
    )


def start_daemon(settings: Settings) -> None:
    DAEMON.start(
        [executable("dagster-daemon"), "run", "-w", str(WORKSPACE)],
        env=environment(settings),
    )


def url(settings: Settings) -> str:
    return f"http://{settings.monitoring.host}:{settings.monitoring.dagster_port}"


def graphql(
    settings: Settings, query: str, variables: dict | None = None, *, timeout_s: float = 10
) -> dict:
    """POST a GraphQL query; a busy webserver's transient 5xx answers are retried twice."""
    for attempt in range(3):
        response = httpx.post(
            f"{url(settings)}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=timeout_s,
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
