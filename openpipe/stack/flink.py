"""Flink: a standalone JobManager + `flink.taskmanagers` TaskManagers from the PyFlink distribution.

Conf under .openpipe/flink/conf; the cluster, not the job, says where checkpoints and
savepoints go (.openpipe/flink/checkpoints and savepoints). The processes load their
classes from .openpipe/flink/lib: the distribution's lib/ plus the Kafka SQL connector,
as compose's Flink image has it (docker/flink/Dockerfile).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import httpx
import yaml

from openpipe.config import Settings
from openpipe.stack import jars
from openpipe.stack.process import LOG_DIR, STATE_DIR, ManagedProcess, StackError

FLINK_STATE = STATE_DIR / "flink"
CONF_DIR = FLINK_STATE / "conf"
CHECKPOINT_DIR = FLINK_STATE / "checkpoints"
SAVEPOINT_DIR = FLINK_STATE / "savepoints"
LIB_DIR = FLINK_STATE / "lib"
#: What the running processes were started with: a digest of their config and extra jar.
STARTED_WITH = FLINK_STATE / "started-with.sha256"
JOBMANAGER = ManagedProcess("flink-jobmanager")
TASKMANAGER = ManagedProcess("flink-taskmanager")
#: TaskManagers 2..8 (`flink.taskmanagers` allows up to 8); `down` stops whichever run.
EXTRA_TASKMANAGERS = tuple(ManagedProcess(f"flink-taskmanager-{i}") for i in range(2, 9))
TASKMANAGERS = (TASKMANAGER, *EXTRA_TASKMANAGERS)


def flink_home() -> Path:
    """The Flink distribution shipped inside the apache-flink (PyFlink) package."""
    try:
        import pyflink
    except ImportError:
        raise StackError("PyFlink is not installed; run `uv sync` first.") from None
    home = Path(pyflink.__file__).parent
    if not (home / "bin" / "jobmanager.sh").exists():
        raise StackError(
            f"the PyFlink package at {home} has no bin/ scripts; reinstall apache-flink."
        )
    return home


def render_config(settings: Settings) -> dict:
    """Flink's config.yaml: loopback only, memory and slots from settings, state under .openpipe/flink."""
    f = settings.flink
    host = settings.monitoring.host
    default_conf = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text())
    return {
        "env": {"java": {"opts": {"all": default_conf["env"]["java"]["opts"]["all"]}}},
        "jobmanager": {
            "bind-host": host,
            "rpc": {"address": host, "port": 6123},
            "memory": {"process": {"size": f"{f.jobmanager_memory_mb}m"}},
            "execution": {"failover-strategy": "region"},
        },
        "taskmanager": {
            "bind-host": host,
            "host": host,
            "numberOfTaskSlots": f.task_slots,
            "memory": {
                "process": {"size": f"{f.taskmanager_memory_mb}m"},
                # Managed memory serves RocksDB only; with heap state the heap needs it.
                "managed": {"fraction": 0.4 if f.state_backend == "rocksdb" else 0.1},
            },
            # A job's slots spread over all TaskManagers, so losing one loses only its share.
            "load-balance": {"mode": "SLOTS"},
        },
        "parallelism": {"default": f.parallelism},
        "rest": {"address": host, "bind-address": host, "port": settings.flink.rest_port},
        "state": {"backend": {"type": "hashmap"}},
        "execution": {
            "checkpointing": {
                "dir": CHECKPOINT_DIR.resolve().as_uri(),
                "savepoint-dir": SAVEPOINT_DIR.resolve().as_uri(),
                "interval": f"{f.checkpoint_interval_s}s",
            }
        },
        "restart-strategy": {
            "type": "exponential-delay",
        },
        "python": {"executable": _python(), "client": {"executable": _python()}},
    }


def _python() -> str:
    """This interpreter under its plain name in its environment (`python`, not the `python3`
    or `python3.11` that may have started us), so every caller renders the same config."""
    plain = Path(sys.executable).with_name("python")
    return str(plain) if plain.exists() else sys.executable


def _env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "FLINK_CONF_DIR": str(CONF_DIR),
        "FLINK_LOG_DIR": str(LOG_DIR / "flink"),
        "FLINK_PID_DIR": str(FLINK_STATE / "pids"),
        "FLINK_LIB_DIR": str(LIB_DIR),
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
    }


def prepare(settings: Settings) -> None:
    for folder in (
        CONF_DIR,
        CHECKPOINT_DIR,
        SAVEPOINT_DIR,
        LOG_DIR / "flink",
        FLINK_STATE / "pids",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    home = flink_home()
    link_lib(home / "lib", *_extra_jars())
    config = _config_text(settings)
    (CONF_DIR / "config.yaml").write_text(config)
    for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties"):
        (CONF_DIR / name).write_text((home / "conf" / name).read_text())
    STARTED_WITH.write_text(_digest(config))


def _extra_jars() -> tuple[Path, ...]:
    """Jars on the processes' class path besides the distribution's: the Kafka connector."""
    return (jars.flink_kafka_connector(),)


def _config_text(settings: Settings) -> str:
    return yaml.safe_dump(render_config(settings), sort_keys=False)


def _digest(config: str) -> str:
    """The rendered config, the distribution's jar names (its Flink version) and the
    connector's bytes."""
    digest = hashlib.sha256(config.encode())
    for jar in sorted((flink_home() / "lib").glob("*.jar")):
        digest.update(jar.name.encode())
    for jar in _extra_jars():
        digest.update(jar.name.encode())
        digest.update(jar.read_bytes())
    return digest.hexdigest()


def restart_needed(settings: Settings) -> bool:
    """True when a running local cluster was started with another config, Flink or connector.

    Its processes read config.yaml and lib/ once, at start: a changed setting (slots,
    memory, checkpointing) reaches them only through a restart. A cluster started before
    this check was kept counts as changed. TaskManagers left running without their
    JobManager count too: a new JobManager alone would not renew them.
    """
    if not any(process.running() for process in (JOBMANAGER, *TASKMANAGERS)):
        return False
    started = STARTED_WITH.read_text().strip() if STARTED_WITH.exists() else None
    return started != _digest(_config_text(settings))


def stop() -> None:
    """Stop the TaskManagers, then the JobManager (its running jobs end with it)."""
    for process in (*TASKMANAGERS, JOBMANAGER):
        process.stop()


def link_lib(distribution_lib: Path, *extra: Path) -> None:
    """LIB_DIR: links to the distribution's jars and `extra`, and nothing else.

    The connector's classes (org.apache.flink.*, which Flink always loads parent-first)
    then come from the processes' own class path: every job shares them, and their
    compiled code, instead of loading and compiling them again from the jar each job
    still ships (`--jarfile`, for the client's planning).
    """
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    wanted = {jar.name: jar.resolve() for jar in [*sorted(distribution_lib.glob("*.jar")), *extra]}
    for entry in LIB_DIR.iterdir():
        if entry.name not in wanted or entry.resolve() != wanted[entry.name]:
            entry.unlink()
    for name, target in wanted.items():
        if not (LIB_DIR / name).is_symlink():
            (LIB_DIR / name).symlink_to(target)


def start_jobmanager() -> None:
    JOBMANAGER.start([str(flink_home() / "bin" / "jobmanager.sh"), "start-foreground"], env=_env())


def taskmanager_process(index: int = 1) -> ManagedProcess:
    """The n-th local TaskManager (1-based)."""
    return TASKMANAGERS[index - 1]


def start_taskmanager(index: int = 1) -> None:
    """Start one TaskManager; each is its own JVM with `flink.task_slots` slots."""
    taskmanager_process(index).start(
        [str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground"], env=_env()
    )


def scale_taskmanagers(settings: Settings) -> list[str]:
    """Run `flink.taskmanagers` local TaskManagers: start those missing, stop those beyond.

    Returns what changed. A stopped TaskManager's tasks fail over to the slots left (the
    job restarts them from its last checkpoint).
    """
    changed = []
    for index, process in enumerate(TASKMANAGERS, start=1):
        if index <= settings.flink.taskmanagers and not process.running():
            start_taskmanager(index)
            changed.append(f"started {process.name}")
        elif index > settings.flink.taskmanagers and process.stop():
            changed.append(f"stopped {process.name}")
    return changed


def overview(settings: Settings) -> dict:
    response = httpx.get(f"{settings.flink.rest_url}/overview", timeout=3)
    response.raise_for_status()
    return response.json()


def jobmanager_ready(settings: Settings) -> tuple[bool, str]:
    try:
        info = overview(settings)
    except httpx.HTTPError as exc:
        return False, f"REST API at {settings.flink.rest_url} not answering ({type(exc).__name__})"
    return True, f"Flink {info.get('flink-version', '?')}"


def ready(settings: Settings) -> tuple[bool, str]:
    try:
        info = overview(settings)
    except httpx.HTTPError as exc:
        return False, f"REST API at {settings.flink.rest_url} not answering ({type(exc).__name__})"
    wanted = settings.flink.taskmanagers if settings.flink.manage_local else 1
    if info.get("taskmanagers", 0) < wanted:
        return False, f"{info.get('taskmanagers', 0)} of {wanted} TaskManager(s) registered"
    return True, (
        f"{info['taskmanagers']} TaskManager(s), {info['slots-available']}/{info['slots-total']} "
        f"slots free, {info.get('jobs-running', 0)} job(s) running"
    )
