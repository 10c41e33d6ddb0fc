"""The live stack as the chaos and soak harnesses see it: processes, faults, recovery, lags.

Thin adapters only: pid files under .openpipe/ (openpipe.stack), the Dagster GraphQL API
for sink run workers, /proc for memory and CPU, Kafka and sink_offsets for lag, the
simulator's control API for traffic. Everything that can fail while a fault is in force
returns None or raises a specific error the caller logs; nothing is retried silently.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from openpipe import kafka
from openpipe.config import REPO_ROOT, Settings
from openpipe.sinks import SINKS
from openpipe.sinks.drain import partition_lag
from openpipe.stack import components, postgres
from openpipe.stack.dagster import graphql as dagster_graphql
from openpipe.stack.process import proc_stats, process_start
from openpipe.storage import db
from openpipe_dagster.sensors.runs import started_process_pid, worker_alive

log = logging.getLogger(__name__)
SINK_TAG = "openpipe/sink"  # openpipe_dagster.runs.SINK_TAG (not imported: it loads Dagster)
SIMULATOR = next(p for p in components.SUPERVISED if p.name == "simulator")
_RUNS = """
{ runsOrError(filter: {statuses: [STARTED]}) {
    ... on Runs { results { runId jobName startTime tags { key value } } } } }
"""
_RUN_LOGS = """
query ($runId: ID!) { logsForRun(runId: $runId, limit: 30) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }
"""


# --- processes -------------------------------------------------------------------------


def component_pid(name: str) -> int | None:
    """The live pid of a stack component ('kafka', 'dagster-daemon', ...) or the simulator."""
    if name == "simulator":
        return SIMULATOR.pid()
    return components.by_name(name).process.pid()


@dataclass(frozen=True, slots=True)
class SinkWorker:
    """A live Dagster run worker process of one sink's job."""

    run_id: str
    sink: str
    pid: int
    started: float


def _graphql(settings: Settings, query: str, variables: dict | None = None) -> dict:
    """Dagster GraphQL (openpipe.stack.dagster.graphql retries a busy webserver's 5xx twice)."""
    return dagster_graphql(settings, query, variables)


def sink_runs(settings: Settings) -> list[tuple[str, str, int | None, bool]]:
    """STARTED sink runs: (run id, sink, worker pid from the run's 'Started process' event, alive)."""
    runs = []
    for run in _graphql(settings, _RUNS)["runsOrError"]["results"]:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        sink = tags.get(SINK_TAG)
        if sink is None:
            continue
        events = _graphql(settings, _RUN_LOGS, {"runId": run["runId"]})["logsForRun"]["events"]
        pid, alive = None, False
        for event in events:
            pid = started_process_pid(event.get("message") or "")
            if pid is not None:
                alive = worker_alive(pid, run["startTime"])
                break
        runs.append((run["runId"], sink, pid, alive))
    return runs


def sink_workers(settings: Settings) -> list[SinkWorker]:
    """Live worker processes of STARTED sink runs."""
    return [
        SinkWorker(run_id, sink, pid, process_start(pid) or 0.0)
        for run_id, sink, pid, alive in sink_runs(settings)
        if alive and pid is not None
    ]


def runs_without_worker(settings: Settings) -> list[tuple[str, str, int | None]]:
    """STARTED sink runs whose worker process is gone: they keep their sink 'in flight'."""
    return [(r, s, pid) for r, s, pid, alive in sink_runs(settings) if not alive]


def dagster_runs_since(settings: Settings, since) -> dict[str, int]:
    """Runs created since `since` (aware datetime), by status, from Dagster's run storage."""
    naive = since.astimezone(UTC).replace(tzinfo=None)
    with psycopg.connect(dagster_dsn(settings), connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM runs WHERE create_timestamp >= %s GROUP BY 1", (naive,)
        ).fetchall()
    return dict(rows)


def dagster_in_flight(settings: Settings) -> dict[str, int]:
    """Runs queued, starting and started right now (all jobs), from Dagster's run storage."""
    with psycopg.connect(dagster_dsn(settings), connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM runs WHERE status IN "
            "('QUEUED', 'STARTING', 'STARTED', 'CANCELING') GROUP BY 1"
        ).fetchall()
    return dict(rows)


def dagster_dsn(settings: Settings) -> str:
    """A connection string to Dagster's own database (its run and event storage)."""
    db_ = settings.database
    return (
        f"host={db_.host} port={db_.port} dbname={db_.dagster_name} user={db_.user} "
        f"password={db_.password}"
    )


_SENSORS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name
    sensorState { ticks(limit: 1) { status error { message errorChain { error { message } } } } } }
} } } }
"""


def failing_sensors(settings: Settings) -> list[tuple[str, str]]:
    """Sensors whose latest tick failed: (name, the root error of the tick)."""
    failing = []
    for repo in _graphql(settings, _SENSORS)["repositoriesOrError"]["nodes"]:
        for sensor in repo["sensors"]:
            ticks = sensor["sensorState"]["ticks"] or [{}]
            if ticks[0].get("status") != "FAILURE":
                continue
            error = ticks[0].get("error") or {}
            # The root cause is the last error of the chain (the first wraps it).
            chain = [error, *(link["error"] for link in error.get("errorChain") or [])]
            failing.append((sensor["name"], (chain[-1].get("message") or "").strip()[:300]))
    return failing


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def daemon_errors(since, log_file: Path | None = None) -> dict[str, int]:
    """ERROR lines of the Dagster daemon's log since `since` (aware datetime), by message kind."""
    path = log_file or components.DAGSTER_DAEMON.process.log_file
    cutoff = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    counts: dict[str, int] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return counts
    for raw in lines:
        line = _ANSI.sub("", raw)
        # "2026-11-27 12:38:19 +0000 - dagster.daemon.X - ERROR - message"
        parts = line.split(" - ", 3)
        if len(parts) < 4 or parts[2] != "ERROR" or parts[0][:19] < cutoff:
            continue
        message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<run>", parts[3])
        key = f"{parts[1].rsplit('.', 1)[-1]}: {message[:90]}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def process_tree(root: int) -> list[int]:
    """root and all its live descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, fields in proc_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


# --- faults and recovery -----------------------------------------------------------------


class FaultNotApplicable(RuntimeError):
    """The fault's target is not there (e.g. no sink run in flight); the log says why."""


def sigkill(pid: int, *, group: bool) -> None:
    """SIGKILL pid (its whole process group when `group`: a JVM with its helpers)."""
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        raise FaultNotApplicable(f"pid {pid} was already gone") from None


def kill_component(name: str, sig: int = signal.SIGKILL, *, group: bool = True) -> int:
    """Signal a stack component found by its pid file; returns the pid."""
    pid = component_pid(name)
    if pid is None:
        raise FaultNotApplicable(f"{name} is not running (no live pid)")
    if sig == signal.SIGKILL:
        sigkill(pid, group=group)
    else:
        os.kill(pid, sig)
    return pid


def postgres_immediate_stop() -> str:
    """`pg_ctl stop -m immediate` on the stack's cluster (as the postgres user under root)."""
    if component_pid("postgres") is None:
        raise FaultNotApplicable("postgres is not running")
    argv = [postgres.find_binary("pg_ctl"), "stop", "-D", str(postgres.DATA_DIR.resolve())]
    argv += ["-m", "immediate", "-w", "-t", "30"]
    user = "postgres" if os.geteuid() == 0 else None
    result = subprocess.run(argv, capture_output=True, text=True, user=user, cwd="/", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pg_ctl stop -m immediate failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "stopped"


@dataclass(frozen=True, slots=True)
class UpResult:
    returncode: int
    seconds: float
    tail: str


def openpipe_up(log_path: Path, timeout_s: float = 600) -> UpResult:
    """Run `uv run --frozen openpipe up` as an operator would; its output goes to log_path."""
    started = time.monotonic()
    with log_path.open("a") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} openpipe up\n")
        out.flush()
        try:
            result = subprocess.run(
                ["uv", "run", "--frozen", "openpipe", "up"],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = -1
    lines = log_path.read_text(errors="replace").splitlines()
    return UpResult(code, time.monotonic() - started, "\n".join(lines[-6:]))


# --- traffic -------------------------------------------------------------------------------


class Simulator:
    """The simulator's control API (simulator/dashboard.py)."""

    def __init__(self, settings: Settings) -> None:
        m = settings.monitoring
        self.base = f"http://{m.host}:{m.simulator_port}/api"
        self.defaults = {
            family: getattr(settings.devices, family).count
            for family in ("wearables", "restaurants", "gps")
        }

    def families(self) -> dict | None:
        try:
            return httpx.get(f"{self.base}/families", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return None

    def stats(self) -> dict | None:
        try:
            return httpx.get(f"{self.base}/stats", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return None

    def set_counts(self, counts: dict[str, int]) -> bool:
        """Set device counts; False when the simulator does not answer (e.g. restarting)."""
        try:
            for family, count in counts.items():
                response = httpx.put(
                    f"{self.base}/families/{family}", json={"count": count}, timeout=5
                )
                response.raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    def ensure_counts(self, counts: dict[str, int]) -> bool | None:
        """Re-apply counts when they differ (a restarted simulator starts from config).

        True when it changed them, False when they were right, None when unreachable.
        """
        state = self.families()
        if state is None:
            return None
        if all(state[f]["devices"] == n for f, n in counts.items()):
            return False
        return True if self.set_counts(counts) else None


def device_counts(settings: Settings, rate: float) -> dict[str, int]:
    """Device counts that make about `rate` events/s: 80 % wearables, 18 % GPS, 2 % orders."""
    w = settings.devices.wearables
    per_wearable = (
        1 / w.heart_rate_interval_s + 1 / w.blood_pressure_interval_s + 1 / w.blood_sugar_interval_s
    )
    per_gps = 1 / settings.devices.gps.interval_s
    per_restaurant = 1 / settings.devices.restaurants.order_interval_s
    return {
        "wearables": max(1, round(0.80 * rate / per_wearable)),
        "gps": max(1, round(0.18 * rate / per_gps)),
        "restaurants": max(1, round(0.02 * rate / per_restaurant)),
    }


# --- lags ------------------------------------------------------------------------------------


def watermark_consumer(settings: Settings, group: str = "openpipe-chaos-watch") -> Consumer:
    """A consumer used only for watermarks and committed offsets (it never subscribes)."""
    return kafka.make_consumer(settings.kafka.bootstrap_servers, group, **{"log_level": 0})


def high_marks(consumer: Consumer, topics: list[str]) -> dict[str, dict[int, int]]:
    """topic -> partition -> high watermark."""
    return {t: kafka.high_watermarks(consumer, t) for t in topics}


def offsets_at(consumer: Consumer, topic: str, when) -> dict[int, int]:
    """partition -> the first offset whose timestamp is at or after `when` (else the high mark)."""
    marks = kafka.high_watermarks(consumer, topic)
    ms = int(when.timestamp() * 1000)
    found = consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in marks], timeout=10)
    return {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition] for tp in found}


def sink_offsets(conn: psycopg.Connection) -> dict[tuple[str, str], dict[int, int]]:
    """(sink, topic) -> partition -> next offset, from sink_offsets."""
    stored: dict[tuple[str, str], dict[int, int]] = {}
    for sink, topic, partition, offset in conn.execute(
        "SELECT sink, kafka_topic, kafka_partition, next_offset FROM sink_offsets"
    ):
        stored.setdefault((sink, topic), {})[partition] = offset
    return stored


def sink_lags(settings: Settings, conn, marks: dict[str, dict[int, int]]) -> dict[str, int]:
    """Each sink's lag behind `marks` (its topic's high watermarks, or targets)."""
    stored = sink_offsets(conn)
    lags = {}
    for spec in SINKS.values():
        topic = spec.topic(settings)
        if topic in marks:
            offsets = stored.get((spec.table, topic), {})
            lags[spec.table] = sum(partition_lag(offsets, marks[topic]).values())
    return lags


def sink_lag(settings: Settings, sink: str) -> int:
    """One sink's lag now: its topic's high watermarks minus its stored offsets."""
    topic = SINKS[sink].topic(settings)
    consumer = watermark_consumer(settings)
    try:
        marks = high_marks(consumer, [topic])
    finally:
        consumer.close()
    with connect(settings) as conn:
        return sink_lags(settings, conn, marks)[sink]


def flink_lag(settings: Settings, marks: dict[int, int]) -> int | None:
    """The Flink job's lag on the wearables topic (offsets it commits on each checkpoint)."""
    topic = settings.kafka.topics.wearables
    consumer = kafka.make_consumer(
        settings.kafka.bootstrap_servers, settings.flink.job_name, **{"log_level": 0}
    )
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in marks], timeout=10)
    except KafkaException:
        return None
    finally:
        consumer.close()
    offsets = {tp.partition: tp.offset for tp in committed if tp.error is None and tp.offset >= 0}
    if not offsets:
        return None
    return sum(partition_lag(offsets, marks).values())


def flink_job(settings: Settings) -> dict | None:
    """The running health job's overview entry from the Flink REST API, or None."""
    try:
        jobs = httpx.get(f"{settings.flink.rest_url}/jobs/overview", timeout=5).json()["jobs"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    ours = [
        j
        for j in jobs
        if j.get("name", "").split(" [", 1)[0] == settings.flink.job_name
        and j.get("state") == "RUNNING"
    ]
    return ours[0] if ours else None


def flink_checkpoint(settings: Settings, job_id: str) -> dict | None:
    """The latest completed checkpoint's figures (end_to_end_duration ms, state size)."""
    try:
        body = httpx.get(f"{settings.flink.rest_url}/jobs/{job_id}/checkpoints", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    latest = (body.get("latest") or {}).get("completed") or {}
    counts = body.get("counts") or {}
    return {
        "duration_ms": latest.get("end_to_end_duration"),
        "state_bytes": latest.get("state_size"),
        "completed": counts.get("completed"),
        "failed": counts.get("failed"),
    }


def connect(settings: Settings, **kwargs) -> psycopg.Connection:
    """An autocommit connection as the app role (a short connect timeout: faults happen)."""
    return db.connect(
        settings, application_name="openpipe-chaos", autocommit=True, connect_timeout=5, **kwargs
    )
