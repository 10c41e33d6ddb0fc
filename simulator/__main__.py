"""CLI: python -m simulator --config config/settings.yaml [--seed N] [--start T --duration S]
[--rate-multiplier X] [--dry-run]."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from openpipe.config import ConfigError, load_settings
from openpipe.events import parse_event_time
from simulator.dashboard import DashboardServer, create_app
from simulator.engine import Simulation
from simulator.publisher import DryRunPublisher, KafkaPublisher
from simulator.runner import RunPlan, now_ms, run_simulation
from simulator.stats import SimulatorStats

log = logging.getLogger("simulator")


def _timestamp_ms(text: str) -> int:
    try:
        return int(parse_event_time(text).timestamp() * 1000)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Simulated wearables, restaurant POS terminals and GPS trackers -> Kafka.",
    )
    p.add_argument("--config", help="settings file (default: $OPENPIPE_CONFIG or config/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--start",
        type=_timestamp_ms,
        help="virtual clock start, RFC 3339 (e.g. 2026-01-01T00:00:00Z); needs --duration",
    )
    p.add_argument(
        "--duration",
        type=_positive,
        help="seconds to simulate; with --start as fast as possible, else in real time",
    )
    p.add_argument("--rate-multiplier", type=_positive, default=1.0, help="scale all send rates")
    p.add_argument("--dry-run", action="store_true", help="write JSON lines to stdout, not Kafka")
    p.add_argument("--port", type=int, help="dashboard port (default monitoring.simulator_port)")
    p.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not serve the dashboard (implied by --dry-run)",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (logs go to stderr)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, wire the simulation to its publisher and dashboard, and run it."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.start is not None and args.duration is None:
        build_parser().error("--start needs --duration (the virtual period to generate)")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2

    virtual = args.start is not None
    start = args.start if virtual else now_ms()
    end = None if args.duration is None else start + int(args.duration * 1000)
    plan = RunPlan(start_ms=start, end_ms=end, virtual=virtual)
    stats = SimulatorStats()
    sim = Simulation(settings, args.seed, start, rate_multiplier=args.rate_multiplier)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; flushing and stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    dashboard = None
    if not (args.dry_run or args.no_dashboard):
        port = args.port or settings.monitoring.simulator_port
        app = create_app(sim, stats, needs_kafka=True)
        dashboard = DashboardServer(app, settings.monitoring.host, port)
        dashboard.start()
    try:
        if args.dry_run:
            stats.kafka_ready, stats.kafka_error = True, None
            publisher = DryRunPublisher(stats, sys.stdout.buffer)
        else:
            publisher = KafkaPublisher(settings, stats)
            if not publisher.wait_until_ready(stop):
                return 0
            publisher.start_probing(stop)
            if not virtual:
                # Waiting for Kafka took a while: start real time from now, not from then.
                plan = RunPlan(start_ms=now_ms(), end_ms=end, virtual=False)
        mode = "virtual" if virtual else "real-time"
        when = datetime.fromtimestamp(plan.start_ms / 1000, tz=UTC).isoformat()
        log.info(
            "simulating %s devices in %s mode from %s (seed %d)",
            {f: sim.state(f).devices for f in sim.fleets},
            mode,
            when,
            args.seed,
        )
        undelivered = run_simulation(sim, publisher, stats, plan, stop)
    finally:
        stop.set()
        if dashboard is not None:
            dashboard.stop()
    return 1 if undelivered else 0


if __name__ == "__main__":
    sys.exit(main())
