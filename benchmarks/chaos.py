"""make chaos: faults at random moments under load, then an exact account of every event.

Against the live stack (`make up`): raises the simulator to --rate events/s, produces a
labelled probe stream with delivery reports, and injects the seeded fault plan (broker,
sink run workers, Dagster daemon, PostgreSQL, Flink TaskManager, simulator). After each
broker, daemon, PostgreSQL or TaskManager fault it runs `openpipe up` as an operator
would; sink workers and the simulator are left to Dagster's supervision. Then it stops
the traffic, waits until every sink and the Flink job have caught up, and accounts for
every message of every topic (benchmarks/system_ledger.py). The report goes to
.openpipe/reports/chaos-<run>.md; the exit status is 0 only when the account passes.

Usage: uv run --frozen python benchmarks/chaos.py [--seed 15] [--duration 720]
       [--rate 2000] [--faults sink_worker_sigkill=3,kafka_broker_sigkill=0,...] [--plan-only]
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import system_stack as stack
from system_account import FaultRecord, SessionWatch, render_report, verdict
from system_ledger import account_raw, account_upserts, compare_windows
from system_plan import PlannedFault, parse_counts, plan_faults
from system_probe import ProbeProducer

from openpipe.config import REPO_ROOT, Settings, load_settings
from openpipe.sinks import SINKS

log = logging.getLogger("chaos")
REPORTS = REPO_ROOT / ".openpipe" / "reports"


def say(message: str) -> None:
    """One progress line with the wall-clock time (this is a CLI)."""
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def _now() -> str:
    return f"{datetime.now(UTC):%H:%M:%S}"


class Traffic:
    """The simulator at the target rate (re-applied after restarts) and the probe stream."""

    def __init__(self, settings: Settings, run_id: str, rate: float, probe_rate: float) -> None:
        self.simulator = stack.Simulator(settings)
        self.counts = stack.device_counts(settings, rate)
        self.probes = ProbeProducer(settings, run_id, probe_rate)
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="traffic", daemon=True)
        self.reapplied = 0

    def start(self) -> None:
        if not self.simulator.set_counts(self.counts):
            raise SystemExit("the simulator does not answer on its control API; is the stack up?")
        say(f"simulator devices set to {self.counts}; probes at {self.probes.rate:g}/s")
        self.probes.start()
        self._keeper.start()

    def _keep(self) -> None:
        while not self._stop.wait(5):
            if self.simulator.ensure_counts(self.counts):
                self.reapplied += 1
                say(f"simulator came back with its config's devices: set {self.counts} again")

    def stop(self) -> int:
        """Stop producing: the keeper, the probes (flushed), then the simulator's devices."""
        self._stop.set()
        self._keeper.join()
        left = self.probes.stop()
        self.simulator.set_counts({family: 0 for family in self.counts})
        return left

    def restore(self) -> None:
        """The simulator back at its configured device counts."""
        self._stop.set()
        if not self.simulator.set_counts(self.simulator.defaults):
            say("could not restore the simulator's device counts (it does not answer)")


class FaultInjector:
    """Executes planned faults and the recovery each one calls for."""

    def __init__(
        self,
        settings: Settings,
        seed: int,
        up_log: Path,
        recovery_delay_s: float,
        worker_wait_s: float,
    ):
        self.settings = settings
        self.worker_wait_s = worker_wait_s
        self.rng = random.Random(seed + 1)
        self.up_log = up_log
        self.recovery_delay_s = recovery_delay_s

    def inject(self, fault: PlannedFault) -> FaultRecord:
        record = FaultRecord(fault.at_s, _now(), fault.kind, "", "injected", fault.recovery)
        try:
            record.target = getattr(self, fault.kind)()
        except stack.FaultNotApplicable as exc:
            record.outcome = f"skipped: {exc}"
            return record
        except Exception as exc:  # a fault that could not be injected is logged, not fatal
            record.outcome = f"error: {type(exc).__name__}: {exc}"
            return record
        if fault.recovery == "up":
            time.sleep(self.recovery_delay_s)
            result = stack.openpipe_up(self.up_log)
            record.recovery_s = result.seconds
            record.recovery = "openpipe up" + (
                "" if result.returncode == 0 else f" FAILED ({result.returncode})"
            )
            if result.returncode != 0:
                record.recovery_failed = True
                say(f"openpipe up failed; last lines:\n{result.tail}")
        elif fault.kind == "simulator_sigterm":
            record.recovery_s = self._wait_new_simulator(record.target)
            record.recovery_failed = record.recovery_s is None
            record.recovery = "simulator supervisor" + (
                " (not back within 90 s)" if record.recovery_failed else ""
            )
        else:
            record.recovery = "Dagster (new session)"
            threading.Thread(
                target=self._time_new_session, args=(record,), name="recovery", daemon=True
            ).start()
        return record

    def _time_new_session(self, record: FaultRecord) -> None:
        """Fill in how long until another run of the killed worker's sink is STARTED.

        After `SessionWatch.limit_s` without one, the sink's lag decides: nothing to drain
        is fine (no session is due), lag that stays unserved is a stall.
        """
        sink, run = record.target.split(" run ", 1)
        run = run.split(" ", 1)[0]
        watch = SessionWatch()
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            try:
                runs = stack.sink_runs(self.settings)
            except Exception:  # faults make the webserver unreachable now and then
                runs = []
            if any(s == sink and not r.startswith(run) and alive for r, s, _, alive in runs):
                record.recovery_s = elapsed
                return
            if elapsed >= watch.limit_s:
                try:
                    outcome = watch.outcome(elapsed, stack.sink_lag(self.settings, sink))
                except Exception:  # PostgreSQL or the broker down: ask again
                    outcome = None
                if outcome == "idle":
                    record.recovery = (
                        f"Dagster: {sink} had nothing to drain; no session due "
                        f"within {watch.limit_s:.0f} s"
                    )
                    return
                if outcome == "stalled":
                    record.recovery = (
                        f"Dagster: no new {sink} session within {elapsed:.0f} s, "
                        "with messages to drain"
                    )
                    record.stalled = True
                    return
            time.sleep(3)

    def kafka_broker_sigkill(self) -> str:
        return f"kafka pid {stack.kill_component('kafka')}"

    def dagster_daemon_sigkill(self) -> str:
        # The daemon alone, as a crash would: its code server and run workers live on.
        return f"dagster-daemon pid {stack.kill_component('dagster-daemon', group=False)}"

    def flink_taskmanager_sigkill(self) -> str:
        return f"flink-taskmanager pid {stack.kill_component('flink-taskmanager')}"

    def postgres_immediate_stop(self) -> str:
        pid = stack.component_pid("postgres")
        return f"postgres pid {pid}: {stack.postgres_immediate_stop()}"

    def simulator_sigterm(self) -> str:
        return f"simulator pid {stack.kill_component('simulator', signal.SIGTERM, group=False)}"

    def sink_worker_sigkill(self) -> str:
        deadline = time.monotonic() + self.worker_wait_s
        while True:
            try:
                workers = stack.sink_workers(self.settings)
            except httpx.HTTPError as exc:  # a busy webserver answers 500 now and then
                say(f"  Dagster GraphQL: {type(exc).__name__}; asking again")
                workers = []
            if workers:
                worker = self.rng.choice(sorted(workers, key=lambda w: w.run_id))
                stack.sigkill(worker.pid, group=False)
                return f"{worker.sink} run {worker.run_id[:8]} pid {worker.pid}"
            if time.monotonic() > deadline:
                raise stack.FaultNotApplicable(
                    f"no sink run was in flight for {self.worker_wait_s:g} s"
                )
            time.sleep(0.5)

    def _wait_new_simulator(self, target: str) -> float | None:
        old = int(target.rsplit(" ", 1)[1])
        started = time.monotonic()
        while time.monotonic() - started < 90:
            pid = stack.component_pid("simulator")
            if pid is not None and pid != old and self._answers():
                return time.monotonic() - started
            time.sleep(1)
        return None

    def _answers(self) -> bool:
        return stack.Simulator(self.settings).families() is not None


class Watch:
    """Progress lines every `every` s: lags of the sinks and the Flink job (when reachable)."""

    def __init__(self, settings: Settings, every: float = 20) -> None:
        self.settings, self.every = settings, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self.topics = sorted({spec.topic(settings) for spec in SINKS.values()})
        self.status = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            say(f"{self.status} | {self.lags()}")

    def lags(self) -> str:
        try:
            consumer = stack.watermark_consumer(self.settings)
            try:
                marks = stack.high_marks(consumer, self.topics)
            finally:
                consumer.close()
            with stack.connect(self.settings) as conn:
                lags = stack.sink_lags(self.settings, conn, marks)
            flink = stack.flink_lag(self.settings, marks[self.settings.kafka.topics.wearables])
        except Exception as exc:  # faults make reads fail; the line says so
            return f"lags unavailable ({type(exc).__name__})"
        text = ", ".join(f"{sink} {lag:,}" for sink, lag in lags.items())
        try:
            runs = stack.dagster_in_flight(self.settings)
            queue = ", runs " + " ".join(f"{k.lower()} {v}" for k, v in sorted(runs.items()))
        except Exception:  # Dagster's storage is in the PostgreSQL the faults stop
            queue = ""
        return f"lag: {text}, flink {flink if flink is not None else '?'}{queue}"


def wait_settled(
    settings: Settings, ends: dict[str, dict[int, int]], timeout_s: float
) -> tuple[bool, dict[str, dict[int, int]]]:
    """Wait until raw sinks and Flink reach `ends`, then the Flink output sinks reach theirs.

    Returns (settled, the Flink output topics' end marks).
    """
    deadline = time.monotonic() + timeout_s
    raw_topics = {s.topic(settings) for s in SINKS.values() if s.family}
    flink_topics = sorted({s.topic(settings) for s in SINKS.values() if not s.family})
    wearables = settings.kafka.topics.wearables
    last_line, flink_marks = 0.0, None
    while time.monotonic() < deadline:
        try:
            with stack.connect(settings) as conn:
                raw_lags = stack.sink_lags(settings, conn, {t: ends[t] for t in raw_topics})
                flink = stack.flink_lag(settings, ends[wearables])
                if sum(raw_lags.values()) == 0 and flink == 0 and flink_marks is None:
                    consumer = stack.watermark_consumer(settings)
                    try:
                        flink_marks = stack.high_marks(consumer, flink_topics)
                    finally:
                        consumer.close()
                    say("raw sinks and the Flink job caught up; waiting for the Flink output sinks")
                out_lags = stack.sink_lags(settings, conn, flink_marks) if flink_marks else {}
        except Exception as exc:
            say(f"settling: lags unavailable ({type(exc).__name__}: {exc})")
            time.sleep(5)
            continue
        if flink_marks is not None and sum(out_lags.values()) == 0:
            return True, flink_marks
        if time.monotonic() - last_line > 15:
            last_line = time.monotonic()
            behind = {**raw_lags, **out_lags}
            say(
                "settling: lag "
                + ", ".join(f"{k} {v:,}" for k, v in behind.items() if v)
                + f", flink {flink if flink is not None else '?'}"
                + _failing_sensors_text(settings)
            )
        time.sleep(3)
    if flink_marks is None:
        consumer = stack.watermark_consumer(settings)
        try:
            flink_marks = stack.high_marks(consumer, flink_topics)
        finally:
            consumer.close()
    return False, flink_marks


def _failing_sensors_text(settings: Settings) -> str:
    try:
        failing = stack.failing_sensors(settings)
    except Exception as exc:  # the webserver may be down or busy; the line says so
        return f"; sensors unknown ({type(exc).__name__})"
    if not failing:
        return ""
    errors = sorted({error for _, error in failing})
    return f"; {len(failing)} sensor(s) failing ({'; '.join(errors)[:160]})"


def _stack_up(up_log: Path) -> None:
    result = stack.openpipe_up(up_log)
    if result.returncode != 0:
        raise SystemExit(f"openpipe up failed before the run:\n{result.tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--duration", type=float, default=720, help="fault phase, seconds")
    parser.add_argument("--warmup", type=float, default=30, help="traffic before the first fault")
    parser.add_argument("--cooldown", type=float, default=30, help="traffic after the last fault")
    parser.add_argument("--rate", type=float, default=2000, help="simulator events/s")
    parser.add_argument("--probe-rate", type=float, default=30, help="probe events/s")
    parser.add_argument("--faults", default="", help="counts, e.g. kafka_broker_sigkill=2")
    parser.add_argument("--min-gap", type=float, default=8, help="seconds between fault moments")
    parser.add_argument("--recovery-delay", type=float, default=3, help="seconds before `up`")
    parser.add_argument("--settle-timeout", type=float, default=900)
    parser.add_argument(
        "--worker-wait", type=float, default=45, help="seconds to wait for a sink run to kill"
    )
    parser.add_argument("--plan-only", action="store_true", help="print the fault plan and stop")
    parser.add_argument(
        "--account-only",
        metavar="SINCE/UNTIL",
        help="no traffic, no faults: wait for the pipeline, then account for the messages "
        "Kafka received between two ISO times (e.g. an earlier run's traffic window)",
    )
    args = parser.parse_args()
    if args.account_only:
        return account_only(args.account_only, args.settle_timeout)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    counts = parse_counts(args.faults)
    plan = plan_faults(args.seed, counts, args.duration, args.min_gap)
    say(f"fault plan (seed {args.seed}, {len(plan)} faults over {args.duration:g} s):")
    for fault in plan:
        print(f"  +{fault.at_s:6.1f} s  {fault.kind}  ({fault.recovery})")
    if args.plan_only:
        return 0
    settings = load_settings()
    run_id = datetime.now(UTC).strftime("%m%d%H%M%S")
    REPORTS.mkdir(parents=True, exist_ok=True)
    up_log = REPORTS / f"chaos-{run_id}-up.log"
    report_path = REPORTS / f"chaos-{run_id}.md"
    say(f"run {run_id}: checking the stack (openpipe up)")
    _stack_up(up_log)
    topics = sorted({spec.topic(settings) for spec in SINKS.values()})
    consumer = stack.watermark_consumer(settings)
    try:
        starts = stack.high_marks(consumer, topics)
    finally:
        consumer.close()
    traffic = Traffic(settings, run_id, args.rate, args.probe_rate)
    watch = Watch(settings)
    injector = FaultInjector(settings, args.seed, up_log, args.recovery_delay, args.worker_wait)
    records: list[FaultRecord] = []
    notes: list[str] = []
    began = datetime.now(UTC)
    traffic.start()
    watch.start()
    try:
        watch.status = "warming up"
        time.sleep(args.warmup)
        phase = time.monotonic()
        for i, fault in enumerate(plan, 1):
            wait = fault.at_s - (time.monotonic() - phase)
            if wait > 0:
                watch.status = f"faults {i - 1}/{len(plan)}, next {fault.kind} in {wait:.0f} s"
                time.sleep(wait)
            watch.status = f"fault {i}/{len(plan)} ({fault.kind}) in progress"
            say(f"fault {i}/{len(plan)} at +{time.monotonic() - phase:.0f} s: {fault.kind}")
            record = injector.inject(fault)
            records.append(record)
            recovered = (
                f"; {record.recovery} {record.recovery_s:.0f} s" if record.recovery_s else ""
            )
            say(f"  -> {record.target or '-'}: {record.outcome}{recovered}")
        fault_phase_s = time.monotonic() - phase
        watch.status = "cooling down"
        time.sleep(args.cooldown)
        say("stopping the traffic")
        left = traffic.stop()
        if left:
            notes.append(f"{left} probe(s) had no delivery report when the traffic stopped")
        time.sleep(3)
        stopped = datetime.now(UTC)
        consumer = stack.watermark_consumer(settings)
        try:
            ends = stack.high_marks(consumer, topics)
        finally:
            consumer.close()
        traffic.restore()
        say("simulator back at its configured devices; waiting for every lag to reach zero")
        watch.status = "settling"
        settle_began = time.monotonic()
        settled, flink_ends = wait_settled(settings, ends, args.settle_timeout)
        settle_s = time.monotonic() - settle_began
        notes.append(
            f"fault phase took {fault_phase_s:.0f} s (planned {args.duration:g} s); "
            + (
                f"every lag reached zero {settle_s:.0f} s after the traffic stopped"
                if settled
                else f"the pipeline had not caught up after {args.settle_timeout:g} s"
            )
        )
        ends.update(flink_ends)
    except BaseException:
        say("the run was interrupted; putting the simulator back and running openpipe up")
        watch.stop()
        traffic.restore()
        stack.openpipe_up(up_log)
        raise
    watch.stop()
    traffic.restore()
    notes.append(f"simulator device counts re-applied {traffic.reapplied} time(s) after restarts")
    marked = [line for line in up_log.read_text().splitlines() if "marked" in line]
    if marked:
        notes.append("openpipe up after faults: " + "; ".join(m.split("] ", 1)[-1] for m in marked))
    notes += stack_notes(settings, began)
    say("taking the account")
    raw, upserts, windows = take_account(
        settings, starts, ends, traffic.probes.ledger, began, stopped
    )
    report = render_report(
        title=f"Chaos run {run_id}",
        settings_line=(
            f"Seed {args.seed}; fault phase {args.duration:g} s; simulator {args.rate:g} events/s "
            f"({traffic.counts}); probes {args.probe_rate:g}/s; traffic {began:%H:%M:%S}-"
            f"{stopped:%H:%M:%S} UTC."
        ),
        faults=records,
        raw=raw,
        upserts=upserts,
        windows=windows,
        notes=notes,
    )
    report_path.write_text(report)
    print(report)
    say(f"report: {report_path}")
    _stack_up(up_log)
    return 0 if not verdict(raw, upserts, windows, records) else 1


def take_account(settings, starts, ends, ledger, since, until) -> tuple[list, list, list]:
    """Every sink's topic range filed against the tables (raw topics with the probe ledger,
    if any), and the Flink windows compared with a batch recomputation over since..until."""
    raw, upserts = [], []
    with stack.connect(settings) as conn:
        for spec in SINKS.values():
            topic = spec.topic(settings)
            if spec.family:
                raw.append(
                    account_raw(conn, settings, spec, starts[topic], ends[topic], ledger, say)
                )
            else:
                upserts.append(
                    account_upserts(conn, settings, spec, starts[topic], ends[topic], say)
                )
        windows = [compare_windows(conn, settings, since, until)]
    return raw, upserts, windows


def account_only(window: str, settle_timeout: float) -> int:
    """Re-take the account of an earlier window once the pipeline has caught up.

    The range of each topic comes from the message timestamps (offsets_for_times), so it is
    exact for whatever Kafka received in the window; no probe ledger is available.
    """
    since, until = (datetime.fromisoformat(t) for t in window.split("/", 1))
    settings = load_settings()
    run_id = datetime.now(UTC).strftime("%m%d%H%M%S")
    topics = sorted({spec.topic(settings) for spec in SINKS.values()})
    consumer = stack.watermark_consumer(settings)
    try:
        starts = {t: stack.offsets_at(consumer, t, since) for t in topics}
        ends = {t: stack.offsets_at(consumer, t, until) for t in topics}
    finally:
        consumer.close()
    say(f"accounting for {since:%H:%M:%S}-{until:%H:%M:%S}; waiting for every lag to reach zero")
    settled, flink_ends = wait_settled(settings, ends, settle_timeout)
    ends.update(flink_ends)
    notes = [f"account only (no faults injected by this run) of the window {window}"]
    if not settled:
        notes.append(f"the pipeline had not caught up after {settle_timeout:g} s")
    raw, upserts, windows = take_account(settings, starts, ends, None, since, until)
    report = render_report(
        title=f"Chaos account {run_id}",
        settings_line=f"Messages Kafka received {since.isoformat()} .. {until.isoformat()}.",
        faults=[],
        raw=raw,
        upserts=upserts,
        windows=windows,
        notes=notes,
    )
    path = REPORTS / f"chaos-{run_id}-account.md"
    path.write_text(report)
    print(report)
    say(f"report: {path}")
    return 0 if not verdict(raw, upserts, windows) else 1


def stack_notes(settings: Settings, since: datetime) -> list[str]:
    """What Dagster shows after the run: runs by status, and sink runs in flight without a worker."""
    notes = []
    try:
        counts = stack.dagster_runs_since(settings, since)
        notes.append(
            "Dagster runs created during the run, by status: "
            + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
        )
        for kind, count in sorted(stack.daemon_errors(since).items(), key=lambda kv: -kv[1])[:8]:
            notes.append(f"daemon log ERROR x{count}: {kind}")
        for name, error in stack.failing_sensors(settings):
            notes.append(f"sensor {name}: latest tick FAILED: {error}")
        orphans = stack.runs_without_worker(settings)
        if orphans:
            notes.append(
                "sink runs STARTED whose worker process is gone: "
                + "; ".join(f"{sink} run {run[:8]} (pid {pid})" for run, sink, pid in orphans)
            )
    except Exception as exc:
        notes.append(f"could not read Dagster's runs: {type(exc).__name__}: {exc}")
    return notes


if __name__ == "__main__":
    sys.exit(main())
