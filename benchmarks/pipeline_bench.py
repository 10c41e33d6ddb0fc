"""Pipeline benchmark: the whole live stack (simulator -> Kafka -> sinks/Flink -> PostgreSQL).

Steady state at the configured device counts (the simulator is set back to them first,
and the sinks must have drained what came before): over --window seconds,

- busy cores of the whole machine (/proc/stat; everything running counts, say what ran)
  and of this stack's own processes (the process groups of PostgreSQL with its backends,
  Kafka, Flink, the Dagster code server with its run workers, webserver and daemon, the
  viewer and the simulator; /proc/<pid>/stat, sampled every second: a process that ends
  between two samples loses up to a second),
- CPU per minute by component, Dagster's split into daemon, code servers, run workers
  and webserver,
- freshness p50/p95: ingested_at - kafka_timestamp of the raw rows stored in the window,
- Dagster runs per sink per hour (runs created in the last --runs-lookback seconds).

Capacity: the simulator's device count is raised through its control API
(PUT /api/families/<family>, the configured family mix scaled) in --steps, each held for
--hold seconds. A step counts when, over its second half, every sink's lag and the Flink
job's lag stay bounded (the last sample at most twice the half's first, or under 10 s of
traffic) and freshness p95 of the raw rows stays <= 10 s. The device counts are restored
at the end.

Usage: uv run python benchmarks/pipeline_bench.py [--window 120] [--runs 1]
       [--steps 10000,20000,50000,100000] [--hold 180] [--no-capacity]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

from openpipe import kafka
from openpipe.config import Settings, load_settings
from openpipe.sinks import SINKS, partition_lag
from openpipe.sinks.writer import read_offsets
from openpipe.stack import components
from openpipe.stack import dagster as stack_dagster
from openpipe.stack.process import command_line, cpu_ticks, proc_stats
from openpipe.storage import db

RAW = [table for table, spec in SINKS.items() if spec.family]
FAMILIES = ("wearables", "restaurants", "gps")
HZ = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- measurements --------------------------------------------------------------------------


def cpu_jiffies() -> tuple[int, int]:
    values = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]))
    return sum(values), values[3] + values[4]  # total, idle + iowait


def stack_ticks(leaders: dict[int, str]) -> dict[int, tuple[int, str]]:
    """pid -> (utime + stime ticks, role) for every process of the stack's process groups,
    plus PostgreSQL's backends (each in a session of its own, children of the postmaster).

    Roles: the Dagster daemon, the code servers, the run workers (what else is in the code
    server's group), and each other component by name.
    """
    found = {}
    for pid, fields in proc_stats():
        parent, group = int(fields[1]), int(fields[2])
        component = leaders.get(group) or (
            "postgres" if leaders.get(parent) == "postgres" else None
        )
        if component is None:
            continue
        role = component
        if component == "dagster-code-server":
            cmd = command_line(pid)
            role = "code servers" if "code-server" in cmd or "api grpc" in cmd else "runs"
        found[pid] = (cpu_ticks(fields), role)
    return found


def stack_groups() -> dict[int, str]:
    """Process group -> component, for every process of the local stack that is running."""
    groups = {pid: c.name for c in components.ALL if (pid := c.process.pid()) is not None}
    for process in components.SUPERVISED:
        if (pid := process.pid()) is not None:
            groups[pid] = process.name
    return groups


#: The roles reported as Dagster's own cost.
DAGSTER_ROLES = ("dagster-daemon", "code servers", "runs", "dagster-webserver")


class Sampler:
    """Machine busy cores, the stack's own cores, and CPU by role, sampled once a second."""

    def __init__(self) -> None:
        self.groups = stack_groups()
        self.first: dict[int, int] = {}
        self.last: dict[int, tuple[int, str]] = {}
        self.scans = 0
        self.cpu0 = cpu_jiffies()
        self.t0 = time.monotonic()

    def sample(self) -> None:
        born = 0 if self.scans else None  # a process born in the window counts from 0
        for pid, (ticks, role) in stack_ticks(self.groups).items():
            self.first.setdefault(pid, ticks if born is None else born)
            self.last[pid] = (ticks, role)
        self.scans += 1

    def result(self) -> dict:
        seconds = time.monotonic() - self.t0
        total, idle = cpu_jiffies()
        busy = (total - self.cpu0[0] - (idle - self.cpu0[1])) / (total - self.cpu0[0])
        per_role: Counter = Counter()
        for pid, (ticks, role) in self.last.items():
            per_role[role] += (ticks - self.first[pid]) / HZ
        return {
            "busy_cores": busy * os.cpu_count(),
            "stack_cores": sum(per_role.values()) / seconds,
            "cpu_s_per_min": {r: v / seconds * 60 for r, v in sorted(per_role.items())},
            "load": os.getloadavg()[0],
        }


def freshness(settings: Settings, since: datetime, until: datetime) -> tuple[int, float, float]:
    """(rows, p50, p95) of ingested_at - kafka_timestamp over the raw rows stored in a window."""
    union = " UNION ALL ".join(
        f"SELECT extract(epoch FROM ingested_at - kafka_timestamp) AS age FROM {t} "
        "WHERE ingested_at >= %(since)s AND ingested_at < %(until)s"
        for t in RAW
    )
    with db.connect(settings, application_name="pipeline-bench") as conn:
        n, p50, p95 = conn.execute(
            f"SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY age), "
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY age) FROM ({union}) a",
            {"since": since, "until": until},
        ).fetchone()
    return n, p50 or float("nan"), p95 or float("nan")


def lags(settings: Settings, consumer: Consumer) -> dict[str, int]:
    """Sink -> messages not yet stored, and 'flink' -> the job's lag on the wearables topic."""
    out = {}
    with db.connect(settings, application_name="pipeline-bench") as conn:
        for table, spec in SINKS.items():
            topic = spec.topic(settings)
            marks = kafka.high_watermarks(consumer, topic)
            out[table] = sum(partition_lag(read_offsets(conn, table, topic), marks).values())
    topic = settings.kafka.topics.wearables
    marks = kafka.high_watermarks(consumer, topic)
    flink = Consumer(
        kafka.consumer_config(settings.kafka.bootstrap_servers, settings.flink.job_name)
    )
    try:
        committed = flink.committed([TopicPartition(topic, p) for p in marks], timeout=10)
    finally:
        flink.close()
    stored = {tp.partition: max(tp.offset, 0) for tp in committed}
    out["flink"] = sum(partition_lag(stored, marks).values())
    return out


def runs_per_sink_per_hour(settings: Settings, lookback_s: float) -> dict[str, float]:
    stack_dagster.prepare()
    os.environ.update(stack_dagster.environment(settings))
    import dagster as dg

    since = datetime.fromtimestamp(time.time() - lookback_s, UTC)
    counts: Counter = Counter()
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records(
            filters=dg.RunsFilter(created_after=since), limit=20000
        ):
            run = record.dagster_run
            if run.tags.get("openpipe/sink"):
                counts[run.tags["openpipe/sink"]] += 1
            elif run.job_name == "sinks_safety_net_job":
                for table in SINKS:  # a safety-net run materializes sinks too
                    counts[table] += 1
    return {table: counts[table] * 3600 / lookback_s for table in SINKS}


# -- the simulator -----------------------------------------------------------------------


def simulator_url(settings: Settings) -> str:
    return f"http://{settings.monitoring.host}:{settings.monitoring.simulator_port}/api"


def set_devices(settings: Settings, counts: dict[str, int]) -> None:
    for family, count in counts.items():
        response = httpx.put(
            f"{simulator_url(settings)}/families/{family}",
            json={"count": count, "rate_multiplier": 1.0},
            timeout=30,
        )
        response.raise_for_status()


def default_counts(settings: Settings) -> dict[str, int]:
    return {f: getattr(settings.devices, f).count for f in FAMILIES}


def scaled_counts(settings: Settings, total: int) -> dict[str, int]:
    base = default_counts(settings)
    return {f: round(total * n / sum(base.values())) for f, n in base.items()}


def wait_caught_up(settings: Settings, consumer: Consumer, timeout_s: float = 600) -> None:
    """Until every raw sink's lag is below a few seconds of default traffic."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = lags(settings, consumer)
        backlog = {t: current[t] for t in RAW}
        if all(v < 500 for v in backlog.values()):
            say(f"sinks caught up: {backlog}")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the sinks did not catch up within {timeout_s:.0f} s: {backlog}")
        say(f"waiting for the sinks to drain what came before: {backlog}")
        time.sleep(10)


# -- the two parts -----------------------------------------------------------------------


def steady_state(settings: Settings, consumer: Consumer, window: float) -> dict:
    since = datetime.now(UTC)
    sampler = Sampler()
    end = time.monotonic() + window
    next_line = time.monotonic() + 30
    while time.monotonic() < end:
        sampler.sample()
        if time.monotonic() >= next_line:
            say(f"steady state: {end - time.monotonic():.0f} s left")
            next_line += 30
        time.sleep(1)
    figures = sampler.result()
    figures["rows"], figures["p50"], figures["p95"] = freshness(settings, since, datetime.now(UTC))
    return figures


def capacity_step(settings: Settings, consumer: Consumer, devices: int, hold: float) -> dict:
    set_devices(settings, scaled_counts(settings, devices))
    say(f"capacity: {devices:,} devices for {hold:.0f} s")
    started = time.monotonic()
    samples: list[tuple[float, dict[str, int]]] = []
    while time.monotonic() - started < hold:
        time.sleep(min(15, max(1, hold / 12)))
        current = lags(settings, consumer)
        samples.append((time.monotonic() - started, current))
        say(f"  {devices:,} devices, {samples[-1][0]:.0f} s: lag {current}")
    half = [lag for t, lag in samples if t >= hold / 2] or [samples[-1][1]]
    second_half_from = datetime.now(UTC).timestamp() - hold / 2
    n, p50, p95 = freshness(
        settings, datetime.fromtimestamp(second_half_from, UTC), datetime.now(UTC)
    )
    rate = n / (hold / 2) if hold else 0
    unbounded = [
        name for name in half[0] if half[-1][name] > max(2 * half[0][name], 10 * max(rate, 1))
    ]
    ok = not unbounded and p95 == p95 and p95 <= 10
    return {"devices": devices, "ok": ok, "unbounded": unbounded, "p50": p50, "p95": p95, "rows": n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--window", type=float, default=120, help="steady-state seconds")
    parser.add_argument("--runs", type=int, default=1, help="steady-state windows (medians)")
    parser.add_argument("--runs-lookback", type=float, default=3600)
    parser.add_argument("--settle", type=float, default=60, help="seconds before measuring")
    parser.add_argument("--steps", default="10000,20000,50000,100000")
    parser.add_argument("--hold", type=float, default=180, help="seconds per capacity step")
    parser.add_argument("--no-capacity", action="store_true")
    args = parser.parse_args(argv)
    settings = load_settings()
    consumer = kafka.make_consumer(settings.kafka.bootstrap_servers, "openpipe-pipeline-bench")
    try:
        set_devices(settings, default_counts(settings))
        say(f"simulator at the configured counts {default_counts(settings)}")
        wait_caught_up(settings, consumer)
        # Devices removed by the reset flush their held-back events; let that pass.
        say(f"settling for {args.settle:.0f} s")
        time.sleep(args.settle)
        wait_caught_up(settings, consumer)
        windows = []
        for i in range(args.runs):
            say(f"steady-state window {i + 1}/{args.runs}: {args.window:.0f} s")
            windows.append(steady_state(settings, consumer, args.window))
            w = windows[-1]
            say(
                f"  busy cores {w['busy_cores']:.2f} (this stack's processes "
                f"{w['stack_cores']:.2f}; load {w['load']:.1f}), freshness "
                f"p50 {w['p50']:.2f} s / p95 {w['p95']:.2f} s over {w['rows']} rows, "
                f"CPU s/min { ({k: round(v, 1) for k, v in w['cpu_s_per_min'].items()}) }"
            )
        runs = runs_per_sink_per_hour(settings, args.runs_lookback)
        capacity = []
        if not args.no_capacity:
            for devices in (int(s) for s in args.steps.split(",")):
                capacity.append(capacity_step(settings, consumer, devices, args.hold))
                step = capacity[-1]
                say(
                    f"  {devices:,} devices: {'OK' if step['ok'] else 'NOT carried'} "
                    f"(p95 {step['p95']:.1f} s; unbounded lag: {step['unbounded'] or 'none'})"
                )
                if not step["ok"]:
                    break
    finally:
        set_devices(settings, default_counts(settings))
        consumer.close()
    median = statistics.median
    print("\npipeline benchmark (2 shared cores; everything else running counts too)")
    print(
        f"  busy cores at default rates:   {median(w['busy_cores'] for w in windows):.2f} "
        f"(machine), {median(w['stack_cores'] for w in windows):.2f} (this stack's processes)"
    )
    print(
        f"  freshness p50 / p95:           {median(w['p50'] for w in windows):.2f} s / "
        f"{median(w['p95'] for w in windows):.2f} s"
    )
    roles = sorted({r for w in windows for r in w["cpu_s_per_min"]})
    per_role = {r: median(w["cpu_s_per_min"].get(r, 0) for w in windows) for r in roles}
    dagster_cost = ", ".join(f"{r} {per_role.get(r, 0):.1f}" for r in DAGSTER_ROLES)
    others = ", ".join(f"{r} {v:.1f}" for r, v in per_role.items() if r not in DAGSTER_ROLES)
    print(f"  Dagster CPU s per minute:      {dagster_cost}")
    print(f"  other components, CPU s/min:   {others}")
    print(
        f"  runs per sink per hour (last {args.runs_lookback / 60:.0f} min): "
        + ", ".join(f"{t} {n:.1f}" for t, n in runs.items())
    )
    if capacity:
        carried = [s["devices"] for s in capacity if s["ok"]]
        steps = ", ".join(f"{s['devices']:,} {'ok' if s['ok'] else 'no'}" for s in capacity)
        print(
            f"  capacity: {max(carried) if carried else 0:,} devices in real time (steps: {steps})"
        )
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
