"""`openpipe`: start, stop and inspect the local stack (wrapped by the Makefile)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import psycopg
from confluent_kafka import KafkaException

from openpipe.config import REPO_ROOT, ConfigError, Settings, load_settings
from openpipe.sinks.offsets import add_reset_parser, reset_command
from openpipe.stack import components, dagster, flink, jars, kafka, postgres, services, viewer
from openpipe.stack.components import Component
from openpipe.stack.process import (
    STATE_DIR,
    StackError,
    command_line,
    listening_pids,
    require_free_port,
    stop_pid,
    wait_until,
)


class Progress:
    """One live status line on a terminal; a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.started = time.monotonic()
        self.last_plain = 0.0

    def wait(self, component: str, elapsed: float, detail: str) -> None:
        total = time.monotonic() - self.started
        line = f"[{total:5.1f}s] waiting for {component} ({elapsed:.0f}s): {detail}"
        if self.tty:
            sys.stdout.write("\r\033[K" + line[: shutil.get_terminal_size().columns - 1])
            sys.stdout.flush()
        elif time.monotonic() - self.last_plain > 5:
            print(line, flush=True)
            self.last_plain = time.monotonic()

    def say(self, message: str) -> None:
        total = time.monotonic() - self.started
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(f"[{total:5.1f}s] {message}", flush=True)


def _launch(component: Component, settings: Settings, progress: Progress) -> None:
    if not component.local(settings) or component.process.running():
        return
    host, port, setting = component.port(settings)
    if port:
        require_free_port(component.name, host, port, setting)
    progress.say(f"starting {component.name}")
    component.start(settings)


def _wait(component: Component, settings: Settings, progress: Progress) -> str:
    try:
        detail = wait_until(
            lambda: component.ready(settings),
            timeout_s=component.timeout_s,
            alive=component.process.running if component.local(settings) else None,
            on_wait=lambda elapsed, detail: progress.wait(component.name, elapsed, detail),
            progress=component.progress if component.local(settings) else None,
        )
    except StackError as exc:
        where = (
            f"; see its log: {component.process.log_file}\n--- last lines ---\n"
            f"{component.process.log_tail()}"
            if component.local(settings)
            else f"; check the external service at {component.url(settings)}"
        )
        raise StackError(f"{component.name} did not become ready: {exc}{where}") from None
    progress.say(f"{component.name} ready: {detail}")
    return detail


def up(settings: Settings) -> None:
    """Start what is not running, in dependency order, and wait until each is ready."""
    progress = Progress()
    c = components
    postgres.check_timescaledb(settings)
    _launch(c.POSTGRES, settings, progress)
    if not jars.up_to_date():
        progress.say("fetching JVM jars with Maven (first run)")
    # Also with external Kafka and Flink: deploying the Flink job sends the connector jar.
    jars.fetch()
    if c.FLINK_JOBMANAGER.local(settings) and flink.restart_needed(settings):
        progress.say("Flink's config or connector jar changed since it started: restarting it")
        flink.stop()
    for component in (c.KAFKA, c.FLINK_JOBMANAGER):
        _launch(component, settings, progress)
    if settings.database.manage_local:
        _bootstrap(settings, progress)
        note = postgres.preload_note(settings)
        if note and not postgres.has_tables(settings):
            # Nothing is stored yet, so a restart costs nothing and the tables become hypertables.
            progress.say("restarting postgres to preload TimescaleDB (no tables yet)")
            postgres.stop()
            _launch(c.POSTGRES, settings, progress)
            _bootstrap(settings, progress)
        elif note:
            progress.say(note)
    _wait(c.POSTGRES, settings, progress)
    code_server_was_up = c.DAGSTER_CODE_SERVER.process.running()
    if not c.DAGSTER_CODE_SERVER.process.group_running():
        orphans = dagster.fail_orphaned_runs(settings)
        if orphans:
            progress.say(f"marked {orphans} run(s) left in progress by the last stop as failed")
    stale = viewer.code_changed_since_start() if c.SQL_VIEWER.local(settings) else None
    if stale:
        progress.say(
            f"{stale.relative_to(REPO_ROOT)} changed since the sql-viewer started: restarting it"
        )
        c.SQL_VIEWER.process.stop()
    for component in (c.DAGSTER_CODE_SERVER, c.SQL_VIEWER):
        _launch(component, settings, progress)
    # The webserver and the daemon load the code location from the code server.
    _wait(c.DAGSTER_CODE_SERVER, settings, progress)
    for component in (c.DAGSTER_WEBSERVER, c.DAGSTER_DAEMON):
        _launch(component, settings, progress)
    _wait(c.FLINK_JOBMANAGER, settings, progress)
    _launch(c.FLINK_TASKMANAGER, settings, progress)
    if c.FLINK_TASKMANAGER.local(settings):  # `flink.taskmanagers` may have changed
        for change in flink.scale_taskmanagers(settings):
            progress.say(f"flink.taskmanagers is {settings.flink.taskmanagers}: {change}")
    _wait(c.KAFKA, settings, progress)
    kafka.create_topics(settings)
    for component in (c.FLINK_TASKMANAGER, c.DAGSTER_WEBSERVER, c.DAGSTER_DAEMON):
        _wait(component, settings, progress)
    changed = dagster.code_changed_since_start() if code_server_was_up else None
    if changed:
        progress.say(
            f"{changed.relative_to(REPO_ROOT)} changed since the code server started: reloading"
        )
        dagster.reload_code(settings)
    if c.SQL_VIEWER.local(settings):
        _wait(c.SQL_VIEWER, settings, progress)
    _migrate(settings, progress)
    progress.say("stack is up")
    status(settings)


def _bootstrap(settings: Settings, progress: Progress) -> None:
    """Wait until the local server accepts connections, then create roles and databases."""
    wait_until(
        lambda: postgres.accepting(settings),
        timeout_s=components.POSTGRES.timeout_s,
        alive=components.POSTGRES.process.running,
        on_wait=lambda elapsed, detail: progress.wait("postgres", elapsed, detail),
    )
    postgres.bootstrap(settings)


def _migrate(settings: Settings, progress: Progress) -> None:
    """Apply pending migrations before `up` returns, as a `database_schema` materialization."""
    from openpipe.storage.schema import pending_migrations, storage_mode

    with psycopg.connect(settings.database.dsn(), connect_timeout=10) as conn:
        pending = pending_migrations(conn)
    if not pending:
        return
    progress.say(f"applying {len(pending)} migration(s): materializing database_schema")
    dagster.materialize(settings, "database_schema")
    with psycopg.connect(settings.database.dsn(), connect_timeout=10) as conn:
        left = pending_migrations(conn)
        storage = storage_mode(conn)
    if left:
        raise StackError(f"migrations still pending after database_schema ran: {left}")
    progress.say(f"schema migrated ({storage})")


def down(purge: bool) -> None:
    """Stop every process we started (whole process groups); keep the data unless purge.

    The Dagster daemon goes first, so nothing it supervises is relaunched during the stop;
    then the code server with its run workers (sink sessions end after their transaction
    in flight), the webserver, the processes Dagster launched, and the rest in reverse
    start order.
    A simulator whose launching run was cut short before it wrote its pid file is found
    by the port it holds.
    """
    first = (
        components.DAGSTER_DAEMON.process,
        components.DAGSTER_CODE_SERVER.process,
        components.DAGSTER_WEBSERVER.process,
    )
    rest = [c.process for c in reversed(components.ALL) if c.process not in first]
    for process in (*first, *components.SUPERVISED, *rest):
        if process.stop():
            print(f"stopped {process.name}", flush=True)
    for pid in _stray_simulators():
        stop_pid(pid)
        print(f"stopped a simulator (pid {pid}) that held its port without a pid file", flush=True)
    if purge:
        outside = postgres.external_dir()
        if outside is not None:
            shutil.rmtree(outside)
            print(f"deleted {outside}")
        if STATE_DIR.exists():
            shutil.rmtree(STATE_DIR)
            print(f"deleted {STATE_DIR}")


def _stray_simulators() -> list[int]:
    """Our simulator processes still listening on the simulator port."""
    try:
        settings = load_settings()
    except ConfigError:
        return []
    return [
        pid
        for pid in listening_pids(settings.monitoring.simulator_port)
        if "-m simulator" in command_line(pid) and pid != os.getpid()
    ]


def status(settings: Settings) -> bool:
    """Print one line per component; True when all are up."""
    all_up = True
    rows = []
    for component in components.ALL:
        if component is components.SQL_VIEWER and not component.local(settings):
            continue
        ok, detail = component.ready(settings)
        if ok and component.local(settings) and not component.process.running():
            detail += " (not started by openpipe)"
        all_up &= ok
        rows.append((component.name, "up" if ok else "down", component.url(settings), detail))
    simulator = next(p for p in components.SUPERVISED if p.name == "simulator")
    for name, (state, detail) in (
        ("simulator", services.simulator(settings, simulator.pid())),
        ("flink-job", services.flink_job(settings)),
    ):
        rows.append((name, state, "", detail))
    names, width = max(len(r[0]) for r in rows), max(len(r[2]) for r in rows)
    for name, state, url, detail in rows:
        print(f"{name:<{names}} {state:<9} {url:<{width}}  {detail}")
    return all_up


def logs(name: str, lines: int, follow: bool) -> None:
    try:
        process = components.by_name(name).process
    except KeyError:
        process = next((p for p in components.SUPERVISED if p.name == name), None)
        if process is None:
            names = [c.name for c in components.ALL] + [p.name for p in components.SUPERVISED]
            raise StackError(
                f"unknown component {name!r}; choose one of: {', '.join(names)}"
            ) from None
    if not process.log_file.exists():
        raise StackError(f"{name} has no log yet ({process.log_file})")
    os.execvp(
        "tail", ["tail", "-n", str(lines), *(["-F"] if follow else []), str(process.log_file)]
    )


def run_dagster(settings: Settings, args: list[str]) -> None:
    """exec `dagster ARGS` with DAGSTER_HOME and the storage connection of the local stack."""
    dagster.prepare()
    os.environ.update(dagster.environment(settings))
    os.execv(dagster.executable("dagster"), [dagster.executable("dagster"), *args])


def kafka_command(settings: Settings, args: argparse.Namespace) -> int:
    """`openpipe kafka tail|topics` (imported here: it loads the viewer's Kafka view)."""
    from openpipe.stack import kafka_shell
    from sql_viewer.kafka_view import KafkaUnavailable, TopicNotFound

    if getattr(args, "max", None) is not None and args.max < 1:
        raise StackError("--max takes a positive number of messages")
    try:
        if args.kafka_command == "topics":
            kafka_shell.topics(settings)
        else:
            kafka_shell.tail(
                settings,
                args.topic,
                from_beginning=args.from_beginning,
                max_messages=args.max,
                follow=args.follow,
            )
    except (KafkaUnavailable, TopicNotFound) as exc:
        raise StackError(str(exc)) from None
    except BrokenPipeError:  # `| head` closed the pipe: stop quietly
        sys.stderr.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openpipe", description=__doc__)
    parser.add_argument("--config", help="settings file (default: config/settings.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the local stack and wait until it is ready")
    down_parser = sub.add_parser("down", help="stop the local stack, keeping its data")
    down_parser.add_argument("--purge", action="store_true", help="also delete .openpipe/")
    sub.add_parser("status", help="one line per component")
    sub.add_parser(
        "reload", help="load the Dagster definitions again after a code change (the UI's Reload)"
    )
    logs_parser = sub.add_parser("logs", help="tail a component's log")
    logs_parser.add_argument("component")
    logs_parser.add_argument("-n", "--lines", type=int, default=50)
    logs_parser.add_argument("-f", "--follow", action="store_true")
    dagster_parser = sub.add_parser(
        "dagster", help="run the dagster CLI against this stack's instance (e.g. backfills)"
    )
    dagster_parser.add_argument("args", nargs=argparse.REMAINDER)
    sinks_parser = sub.add_parser("sinks", help="sink maintenance (reset-offsets)")
    add_reset_parser(sinks_parser.add_subparsers(dest="sinks_command", required=True))
    kafka_parser = sub.add_parser("kafka", help="look at Kafka topics from the shell")
    kafka_sub = kafka_parser.add_subparsers(dest="kafka_command", required=True)
    tail_parser = kafka_sub.add_parser(
        "tail", help="print a topic's messages: key, headers, timestamp, pretty JSON value"
    )
    tail_parser.add_argument("topic")
    tail_parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest message kept"
    )
    tail_parser.add_argument(
        "--max", type=int, metavar="N", help="print at most N messages (from the end: the last N)"
    )
    tail_parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new messages (Ctrl-C stops)"
    )
    kafka_sub.add_parser(
        "topics", help="partitions, high watermarks, and each sink's and the Flink job's lag"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            down(args.purge)
            return 0
        if args.command == "logs":
            logs(args.component, args.lines, args.follow)
            return 0
        settings = load_settings(args.config)
        if args.command == "up":
            up(settings)
            return 0
        if args.command == "reload":
            dagster.reload_code(settings)
            print(f"reloaded {dagster.DEFINITIONS}; the daemon takes it within 60 s")
            return 0
        if args.command == "dagster":
            run_dagster(settings, args.args)
        if args.command == "sinks":
            return reset_command(settings, args)
        if args.command == "kafka":
            return kafka_command(settings, args)
        return 0 if status(settings) else 1
    except (StackError, ConfigError) as exc:
        print(f"\nopenpipe {args.command}: {exc}", file=sys.stderr)
        return 1
    except (psycopg.Error, KafkaException) as exc:
        print(f"\nopenpipe {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
