"""make soak: the whole pipeline at about 2,000 events/s for a long time, sampled every 30 s.

Each sample records every sink's lag and (from the probe stream) freshness p95, the Flink
job's lag and latest checkpoint duration, memory (PSS) and CPU of every component from
/proc, and Dagster's event-log size and run counts. At the end the freshness of every
row the raw sinks stored is recomputed per 30 s from the tables. Verdict: bounded lag,
freshness p95 within 30 s, no component's memory growing more than 10 % between the
10-minute mark and the end. Report and PNG plot: .openpipe/reports/soak-<run>.{md,png}.

Usage: uv run --frozen python benchmarks/soak.py [--duration 1800] [--rate 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import system_stack as stack
from chaos import REPORTS, Traffic, say
from soak_verdict import (
    Sample,
    freshness_checks,
    lag_checks,
    memory_checks,
    plot,
    render_report,
)

from openpipe.config import Settings, load_settings
from openpipe.sinks import SINKS
from openpipe.stack.process import command_line, proc_stat, tcp_client_ports

log = logging.getLogger("soak")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_WORKERS = "dagster run workers"
RUN_WORKER_BACKENDS = "postgres backends of run workers"
#: Long-lived processes started by `openpipe up` (pid files), plus the simulator.
COMPONENTS = (
    "postgres",
    "kafka",
    "flink-jobmanager",
    "flink-taskmanager",
    "dagster-code-server",
    "dagster-webserver",
    "dagster-daemon",
    "sql-viewer",
    "simulator",
)
_FRESHNESS = (
    "SELECT extract(epoch FROM ingested_at - kafka_timestamp) FROM {table} "
    "WHERE event_id = ANY(%s::uuid[])"
)
_FRESHNESS_BUCKETS = (
    "SELECT extract(epoch FROM date_bin('30 seconds', ingested_at, %(start)s)) - "
    "extract(epoch FROM %(start)s::timestamptz), "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - kafka_timestamp)) "
    "FROM {table} WHERE ingested_at >= %(start)s AND ingested_at < %(end)s "
    "AND event_time > %(start)s::timestamptz - interval '1 day' GROUP BY 1 ORDER BY 1"
)
_FRESHNESS_OVERALL = (
    "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - "
    "kafka_timestamp)), count(*) FROM {table} WHERE ingested_at >= %(start)s AND ingested_at "
    "< %(end)s AND event_time > %(start)s::timestamptz - interval '1 day'"
)


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime ticks) of a process."""
    if (fields := proc_stat(pid)) is None:
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def _pss_kb(pid: int) -> tuple[int, int]:
    """(PSS, the part of it in shared memory segments) of a process, in KiB."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    return tuple(int(fields.get(k, "0 kB").split()[0]) for k in ("Pss", "Pss_Shmem"))


def _near(samples: list[Sample], t: float) -> dict[str, float]:
    """Shared memory of the sample nearest to t seconds."""
    return min(samples, key=lambda s: abs(s.t - t)).shared_mb


def backend_client_port(command: str) -> int | None:
    """The client's port in a PostgreSQL backend's title ("postgres: u db 127.0.0.1(5123) idle")."""
    match = re.match(r"postgres: \S+ \S+ [^ (]+\((\d+)\)", command)
    return int(match.group(1)) if match else None


def worker_backends(postgres: list[int], workers: list[int], server_port: int) -> list[int]:
    """The PostgreSQL backends whose client is a Dagster run worker (they end with it)."""
    ports = tcp_client_ports(workers, server_port)
    if not ports:
        return []
    return [p for p in postgres if backend_client_port(command_line(p)) in ports]


def component_processes(settings: Settings) -> dict[str, list[int]]:
    """Component -> its pids. Dagster run workers (and what they start) are their own group,
    and so are the PostgreSQL backends serving them: both come and go with the sessions.
    """
    groups: dict[str, list[int]] = {}
    for name in COMPONENTS:
        pid = stack.component_pid(name)
        if pid is None:
            continue
        tree = stack.process_tree(pid)
        if name == "dagster-code-server":
            commands = {p: command_line(p) for p in tree}
            workers = [
                p
                for p, cmd in commands.items()
                if "multiprocessing-fork" in cmd or "execute_run" in cmd
            ]
            in_workers = {q for w in workers for q in stack.process_tree(w)}
            groups[RUN_WORKERS] = sorted(in_workers)
            tree = [p for p in tree if p not in in_workers]
        groups[name] = tree
    if groups.get("postgres") and groups.get(RUN_WORKERS):
        served = worker_backends(groups["postgres"], groups[RUN_WORKERS], settings.database.port)
        groups[RUN_WORKER_BACKENDS] = served
        groups["postgres"] = sorted(set(groups["postgres"]) - set(served))
    return groups


class Sampler:
    """Takes one Sample: lags, freshness of recent probes, /proc figures, Flink, Dagster."""

    def __init__(self, settings: Settings, traffic: Traffic, started: float, since: datetime):
        self.settings, self.traffic, self.started, self.since = settings, traffic, started, since
        self.topics = sorted({s.topic(settings) for s in SINKS.values()})
        self._ticks: dict[int, int] = {}
        self._at = time.monotonic()

    def take(self, interval: float) -> Sample:
        sample = Sample(t=time.monotonic() - self.started)
        try:
            self._lags(sample)
        except Exception as exc:
            say(f"lags unavailable: {type(exc).__name__}: {exc}")
        self._proc(sample)
        job = stack.flink_job(self.settings)
        if job is not None:
            checkpoint = stack.flink_checkpoint(self.settings, job["jid"])
            sample.checkpoint_ms = checkpoint and checkpoint["duration_ms"]
        try:
            self._dagster(sample)
            self._freshness(sample, interval)
        except psycopg.Error as exc:
            say(f"database figures unavailable: {type(exc).__name__}: {exc}")
        return sample

    def _lags(self, sample: Sample) -> None:
        consumer = stack.watermark_consumer(self.settings, "openpipe-soak-watch")
        try:
            marks = stack.high_marks(consumer, self.topics)
        finally:
            consumer.close()
        sample.marks = {t: sum(m.values()) for t, m in marks.items()}
        with stack.connect(self.settings) as conn:
            sample.lags.update(stack.sink_lags(self.settings, conn, marks))
        sample.lags["flink"] = stack.flink_lag(
            self.settings, marks[self.settings.kafka.topics.wearables]
        )

    def _proc(self, sample: Sample) -> None:
        now = time.monotonic()
        elapsed = max(now - self._at, 1e-6)
        ticks_now: dict[int, int] = {}
        for name, pids in component_processes(self.settings).items():
            busy, pss, shared = 0, 0, 0
            for pid in pids:
                stat = _stat(pid)
                if stat is None:
                    continue
                ticks_now[pid] = stat[1]
                busy += stat[1] - self._ticks.get(pid, stat[1])
                total_kb, shared_kb = _pss_kb(pid)
                pss, shared = pss + total_kb - shared_kb, shared + shared_kb
            sample.memory_mb[name] = pss / 1024
            sample.shared_mb[name] = shared / 1024
            sample.cpu_cores[name] = busy / _CLK_TCK / elapsed
        self._ticks, self._at = ticks_now, now

    def _dagster(self, sample: Sample) -> None:
        with psycopg.connect(stack.dagster_dsn(self.settings), connect_timeout=5) as conn:
            rows, size = conn.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM event_logs), "
                "pg_total_relation_size('event_logs')"
            ).fetchone()
        sample.event_log_rows, sample.event_log_mb = rows, size / 2**20
        sample.runs = stack.dagster_runs_since(self.settings, self.since)

    def _freshness(self, sample: Sample, interval: float) -> None:
        """p95 of probes produced one to two intervals ago; one not stored yet counts its age."""
        now = time.time()
        ledger = self.traffic.probes.ledger
        with ledger.lock:
            recent = [
                (topic, event_id, produced)
                for (topic, _, _), (event_id, kind, produced) in ledger.acked.items()
                if kind == "valid" and now - 2 * interval <= produced < now - interval
            ]
        with stack.connect(self.settings) as conn:
            for spec in SINKS.values():
                if not spec.family:
                    continue
                topic = spec.topic(self.settings)
                ids = [e for t, e, _ in recent if t == topic]
                if not ids:
                    sample.freshness_p95[spec.table] = None
                    continue
                found = conn.execute(_FRESHNESS.format(table=spec.table), (ids,)).fetchall()
                ages = [float(v) for (v,) in found]
                missing = len(ids) - len(found)
                oldest = [now - p for t, _, p in recent if t == topic]
                ages += sorted(oldest, reverse=True)[:missing]
                ages.sort()
                sample.freshness_p95[spec.table] = ages[min(len(ages) - 1, int(0.95 * len(ages)))]


def final_freshness(settings: Settings, start: datetime, end: datetime):
    """Per raw sink: (p95 over every row stored in [start, end), rows, p95 per 30 s bucket)."""
    overall, buckets = {}, {}
    with stack.connect(settings) as conn:
        for spec in SINKS.values():
            if not spec.family:
                continue
            params = {"start": start, "end": end}
            p95, rows = conn.execute(_FRESHNESS_OVERALL.format(table=spec.table), params).fetchone()
            overall[spec.table] = (p95, rows)
            buckets[spec.table] = [
                (float(t), float(v))
                for t, v in conn.execute(_FRESHNESS_BUCKETS.format(table=spec.table), params)
            ]
    return overall, buckets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds")
    parser.add_argument("--rate", type=float, default=2000, help="simulator events/s")
    parser.add_argument("--probe-rate", type=float, default=30, help="probe events/s")
    parser.add_argument("--interval", type=float, default=30, help="seconds between samples")
    parser.add_argument("--memory-baseline", type=float, default=600, help="seconds (10 min)")
    parser.add_argument("--max-lag-seconds", type=float, default=60)
    parser.add_argument("--freshness-bound", type=float, default=30)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = load_settings()
    run_id = datetime.now(UTC).strftime("%m%d%H%M%S")
    REPORTS.mkdir(parents=True, exist_ok=True)
    up_log = REPORTS / f"soak-{run_id}-up.log"
    result = stack.openpipe_up(up_log)
    if result.returncode != 0:
        raise SystemExit(f"openpipe up failed:\n{result.tail}")
    traffic = Traffic(settings, run_id, args.rate, args.probe_rate)
    began = datetime.now(UTC)
    started = time.monotonic()
    sampler = Sampler(settings, traffic, started, began)
    samples: list[Sample] = []
    traffic.start()
    try:
        sampler.take(args.interval)  # primes the CPU counters
        while time.monotonic() - started < args.duration:
            next_at = started + (len(samples) + 1) * args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            sample = sampler.take(args.interval)
            samples.append(sample)
            lag = ", ".join(f"{k} {v:,}" for k, v in sample.lags.items() if v is not None)
            fresh = ", ".join(
                f"{k} {v:.1f}s" for k, v in sample.freshness_p95.items() if v is not None
            )
            mem = sum(sample.memory_mb.values())
            cpu = sum(sample.cpu_cores.values())
            say(
                f"{sample.t / 60:5.1f} min | lag {lag} | probe p95 {fresh or '-'} | "
                f"memory {mem:,.0f} MiB, cpu {cpu:.2f} cores | checkpoint "
                f"{sample.checkpoint_ms if sample.checkpoint_ms is not None else '?'} ms"
            )
    finally:
        traffic.stop()
        traffic.restore()
    ended = datetime.now(UTC)
    say("soak over; computing freshness of every stored row per 30 s")
    overall, buckets = final_freshness(settings, began, ended)
    topic_of = {s.table: s.topic(settings) for s in SINKS.values()}
    topic_of["flink"] = settings.kafka.topics.wearables
    baseline = min(args.memory_baseline, samples[-1].t / 3)
    checks = lag_checks(samples, topic_of, args.max_lag_seconds)
    checks += freshness_checks({k: v[0] for k, v in overall.items()}, args.freshness_bound)
    checks += memory_checks(samples, baseline, exclude=(RUN_WORKERS, RUN_WORKER_BACKENDS))
    png = REPORTS / f"soak-{run_id}.png"
    plot(samples, png, buckets)
    worst = {sink: max((v for _, v in points), default=None) for sink, points in buckets.items()}
    extra = [
        f"rows per raw sink: {', '.join(f'{k} {v[1]:,}' for k, v in overall.items())}",
        "worst 30-s freshness p95: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in worst.items() if v is not None),
        f"{RUN_WORKERS} and the {RUN_WORKER_BACKENDS} (found by their client's TCP port) are "
        "excluded from the memory check: they come and go with the sink sessions",
        "memory is PSS without shared memory segments, which are sized at start and fill "
        "as they are touched; shared at 10 min -> end: "
        + ", ".join(
            f"{name} {_near(samples, baseline).get(name, 0):,.0f} -> {mb:,.0f} MiB"
            for name, mb in samples[-1].shared_mb.items()
            if mb >= 1
        ),
        f"Dagster runs created during the soak: {samples[-1].runs}",
        f"event log grew from {samples[0].event_log_rows} to {samples[-1].event_log_rows} "
        f"(max id); table {samples[-1].event_log_mb or 0:.1f} MiB",
        f"samples: {len(samples)} every {args.interval:g} s; raw figures in {png.with_suffix('.json').name}",
    ]
    errors = sorted(stack.daemon_errors(began).items(), key=lambda kv: -kv[1])[:8]
    extra += [f"daemon log ERROR x{count}: {kind}" for kind, count in errors]
    try:
        extra += [
            f"sensor {name}: latest tick FAILED: {error}"
            for name, error in stack.failing_sensors(settings)
        ]
    except Exception as exc:
        extra.append(f"could not read the sensors' ticks: {type(exc).__name__}: {exc}")
    report = render_report(
        f"Soak run {run_id}",
        f"{(ended - began).total_seconds() / 60:.1f} minutes at {args.rate:g} events/s "
        f"({traffic.counts}) plus {args.probe_rate:g} probes/s, {began:%H:%M}-{ended:%H:%M} UTC.",
        checks,
        extra,
        png.name,
    )
    png.with_suffix(".json").write_text(
        json.dumps([dataclasses.asdict(s) for s in samples], default=str)
    )
    path = REPORTS / f"soak-{run_id}.md"
    path.write_text(report)
    print(report)
    say(f"report: {path}; plot: {png}")
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
