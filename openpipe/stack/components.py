"""The components of the local stack, in dependency order, with how to start and check each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from openpipe.config import Settings
from openpipe.stack import dagster, flink, jars, kafka, postgres, viewer
from openpipe.stack.process import STATE_DIR, ManagedProcess, port_open


@dataclass(frozen=True)
class Component:
    """One process of the local stack (or an external service it only checks)."""

    name: str
    process: ManagedProcess
    url: Callable[[Settings], str]
    port: Callable[[Settings], tuple[str, int, str]]  # host, port, the setting that moves it
    ready: Callable[[Settings], tuple[bool, str]]
    start: Callable[[Settings], None]
    local: Callable[[Settings], bool]  # False: an external service we only check
    timeout_s: float = 120  # without progress, when `progress` can tell
    progress: Callable[[], str | None] | None = None  # what a slow start is busy with


def _host(settings: Settings) -> str:
    return settings.monitoring.host


def _start_postgres(settings: Settings) -> None:
    postgres.find_binary("postgres")
    postgres.init_cluster(settings)
    postgres.start(settings)


def _start_kafka(settings: Settings) -> None:
    jars.fetch()
    kafka.prepare(settings)
    kafka.start(settings)


def _start_jobmanager(settings: Settings) -> None:
    jars.fetch()
    flink.prepare(settings)
    flink.start_jobmanager()


def _kafka_ready(settings: Settings) -> tuple[bool, str]:
    host, port, _ = _kafka_port(settings)
    if not port_open(host, port):
        return False, f"nothing listening on {host}:{port}"
    return kafka.ready(settings)


def _kafka_port(settings: Settings) -> tuple[str, int, str]:
    host = settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[0]
    return host, settings.kafka.broker_port, "OPENPIPE__KAFKA__BOOTSTRAP_SERVERS"


POSTGRES = Component(
    name="postgres",
    process=postgres.PROCESS,
    url=lambda s: f"postgresql://{s.database.host}:{s.database.port}/{s.database.name}",
    port=lambda s: (s.database.host, s.database.port, "OPENPIPE__DATABASE__PORT"),
    ready=postgres.ready,
    start=_start_postgres,
    local=lambda s: s.database.manage_local,
    timeout_s=60,
)
KAFKA = Component(
    name="kafka",
    process=kafka.PROCESS,
    url=lambda s: f"kafka://{s.kafka.bootstrap_servers}",
    port=_kafka_port,
    ready=_kafka_ready,
    start=_start_kafka,
    local=lambda s: s.kafka.manage_local,
    timeout_s=90,
    progress=kafka.recovery_progress,
)
FLINK_JOBMANAGER = Component(
    name="flink-jobmanager",
    process=flink.JOBMANAGER,
    url=lambda s: s.flink.ui_url,
    port=lambda s: (_host(s), s.flink.rest_port, "OPENPIPE__FLINK__REST_URL"),
    ready=flink.jobmanager_ready,
    start=_start_jobmanager,
    local=lambda s: s.flink.manage_local,
)
FLINK_TASKMANAGER = Component(
    name="flink-taskmanager",
    process=flink.TASKMANAGER,
    url=lambda s: f"{s.flink.ui_url}/#/task-manager",
    port=lambda s: (_host(s), 0, ""),
    ready=flink.ready,
    start=lambda s: (flink.prepare(s), flink.start_taskmanager()),  # `up` adds the rest
    local=lambda s: s.flink.manage_local,
)
DAGSTER_CODE_SERVER = Component(
    name="dagster-code-server",
    process=dagster.CODE_SERVER,
    url=lambda s: f"unix:{dagster.CODE_SOCKET}",
    port=lambda s: (_host(s), 0, ""),
    ready=dagster.code_server_ready,
    start=lambda s: (dagster.prepare(), dagster.start_code_server(s)),
    local=lambda s: True,
    timeout_s=180,
)
DAGSTER_WEBSERVER = Component(
    name="dagster-webserver",
    process=dagster.WEBSERVER,
    url=dagster.url,
    port=lambda s: (_host(s), s.monitoring.dagster_port, "OPENPIPE__MONITORING__DAGSTER_PORT"),
    ready=dagster.webserver_ready,
    start=lambda s: (dagster.prepare(), dagster.start_webserver(s)),
    local=lambda s: True,
    timeout_s=180,
)
DAGSTER_DAEMON = Component(
    name="dagster-daemon",
    process=dagster.DAEMON,
    url=lambda s: f"{dagster.url(s)}/deployment/daemons",
    port=lambda s: (_host(s), 0, ""),
    ready=dagster.daemon_ready,
    start=lambda s: (dagster.prepare(), dagster.start_daemon(s)),
    local=lambda s: True,
    timeout_s=180,
)
SQL_VIEWER = Component(
    name="sql-viewer",
    process=viewer.PROCESS,
    url=viewer.url,
    port=lambda s: (_host(s), s.monitoring.viewer_port, "OPENPIPE__MONITORING__VIEWER_PORT"),
    ready=viewer.ready,
    start=viewer.start,
    local=lambda s: viewer.available(),
    timeout_s=60,
)

ALL: tuple[Component, ...] = (
    POSTGRES,
    KAFKA,
    FLINK_JOBMANAGER,
    FLINK_TASKMANAGER,
    DAGSTER_CODE_SERVER,
    DAGSTER_WEBSERVER,
    DAGSTER_DAEMON,
    SQL_VIEWER,
)

# Processes that Dagster launches (not the CLI) but that `down` must also stop.
SUPERVISED = (
    ManagedProcess("simulator", home=STATE_DIR / "simulator"),
    *flink.EXTRA_TASKMANAGERS,  # the first TaskManager is FLINK_TASKMANAGER's process
)


def by_name(name: str) -> Component:
    for component in ALL:
        if component.name == name:
            return component
    raise KeyError(name)
