"""Simulator benchmark: events/s to Kafka against a tight confluent-kafka loop, side by side.

Prints medians of several alternating runs:
  * ceiling: one Python process producing pre-encoded ~200-byte payloads in a tight loop
    (same producer config: idempotent, acks=all, compression, linger/batch from settings);
  * simulator: all three families with the configured fault mix, virtual clock, 100,000
    devices, to the same broker, delivery reports counted, flushed at the end;
  * --dry-run generation rate (JSON lines to /dev/null) and peak RSS with 100,000 devices.
Topics are throwaway (created and deleted here), so the pipeline's topics stay clean.

    uv run python benchmarks/simulator_bench.py [--runs 3] [--devices 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from openpipe.config import Settings, load_settings, parse_settings
from openpipe.events import FAMILIES
from simulator.engine import Simulation
from simulator.publisher import DryRunPublisher, KafkaPublisher, producer_config
from simulator.runner import RunPlan, run_simulation
from simulator.stats import SimulatorStats

START_MS = 1_767_261_600_000  # 2026-01-01T10:00:00Z, 15:30 IST: between the meal peaks


def scaled_settings(base: Settings, devices: int, topics: dict[str, str]) -> Settings:
    """Base settings with the device mix scaled to `devices` and throwaway topic names."""
    raw = base.model_dump()
    counts = {f: raw["devices"][f]["count"] for f in FAMILIES}
    total = sum(counts.values())
    for f in FAMILIES:
        raw["devices"][f]["count"] = round(devices * counts[f] / total)
    raw["kafka"]["topics"].update(topics)
    return parse_settings(raw, environ={})


def tight_loop(settings: Settings, topic: str, n: int) -> float:
    """Messages/s for `n` pre-encoded ~200-byte payloads, including the final flush."""
    producer = Producer(producer_config(settings))
    payloads = [(os.urandom(60).hex() + "x" * 80).encode() for _ in range(1024)]
    keys = [f"dev-{i:06d}" for i in range(1024)]
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                produce(topic, payloads[i & 1023], keys[i & 1023])
                break
            except BufferError:
                poll(0.05)
        poll(0)
    producer.flush(60)
    return n / (time.perf_counter() - start)


def simulator_run(settings: Settings, seconds: int, dry_run: bool) -> tuple[float, int]:
    """Events/s and count for a virtual-clock run of `seconds` simulated seconds."""
    stats = SimulatorStats()
    sim = Simulation(settings, seed=1, start_ms=START_MS)
    if dry_run:
        out = open(os.devnull, "wb")  # noqa: SIM115 - closed below
        publisher = DryRunPublisher(stats, out)
    else:
        publisher = KafkaPublisher(settings, stats)
        publisher.wait_until_ready(threading.Event())
    plan = RunPlan(START_MS, START_MS + seconds * 1000, virtual=True)
    start = time.perf_counter()
    undelivered = run_simulation(sim, publisher, stats, plan, threading.Event())
    elapsed = time.perf_counter() - start
    if dry_run:
        out.close()
    produced = sum(stats.produced.values())
    failed = sum(stats.failed.values())
    if not dry_run and (undelivered or failed or sum(stats.delivered.values()) != produced):
        raise RuntimeError(f"lost messages: {dict(stats.delivered)} of {dict(stats.produced)}")
    return produced / elapsed, produced


RSS_CHILD = """
import resource, sys, threading
from benchmarks.simulator_bench import scaled_settings
from openpipe.config import load_settings
from simulator.engine import Simulation
from simulator.publisher import DryRunPublisher
from simulator.runner import RunPlan, run_simulation
from simulator.stats import SimulatorStats
import os
settings = scaled_settings(load_settings(), int(sys.argv[1]), {})
sim = Simulation(settings, seed=1, start_ms=1_767_261_600_000)
stats = SimulatorStats()
with open(os.devnull, "wb") as out:
    run_simulation(sim, DryRunPublisher(stats, out), stats,
                   RunPlan(1_767_261_600_000, 1_767_261_600_000 + 60_000, True), threading.Event())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss_mb(devices: int) -> float:
    """Peak resident memory (MB) of a fresh process simulating `devices` for one minute."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(devices)],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds per run")
    parser.add_argument("--ceiling-messages", type=int, default=1_000_000)
    args = parser.parse_args()

    base = load_settings()
    suffix = uuid.uuid4().hex[:8]
    topics = {f: f"bench-{f}-{suffix}" for f in FAMILIES}
    ceiling_topic = f"bench-ceiling-{suffix}"
    admin = AdminClient({"bootstrap.servers": base.kafka.bootstrap_servers})
    new = [
        NewTopic(t, base.kafka.partitions, base.kafka.replication_factor) for t in topics.values()
    ]
    new.append(NewTopic(ceiling_topic, base.kafka.partitions, base.kafka.replication_factor))
    for future in admin.create_topics(new).values():
        future.result()
    settings = scaled_settings(base, args.devices, topics)
    counts = {f: getattr(settings.devices, f).count for f in FAMILIES}
    try:
        ceiling, sim_rates, dry_rates, produced = [], [], [], 0
        for run in range(args.runs):
            ceiling.append(tight_loop(settings, ceiling_topic, args.ceiling_messages))
            rate, produced = simulator_run(settings, args.seconds, dry_run=False)
            sim_rates.append(rate)
            dry_rates.append(simulator_run(settings, args.seconds, dry_run=True)[0])
            print(
                f"run {run + 1}: ceiling {ceiling[-1]:,.0f}/s  simulator {sim_rates[-1]:,.0f}/s"
                f"  dry-run {dry_rates[-1]:,.0f}/s",
                flush=True,
            )
        rss = peak_rss_mb(args.devices)
    finally:
        for future in admin.delete_topics([*topics.values(), ceiling_topic]).values():
            future.result()
    c, s, d = (statistics.median(x) for x in (ceiling, sim_rates, dry_rates))
    print(f"devices: {counts} (total {sum(counts.values()):,})")
    print(f"events per simulator run: {produced:,} ({args.seconds} simulated seconds)")
    print(f"tight-loop ceiling (pre-encoded ~200 B): {c:,.0f} msgs/s (median of {args.runs})")
    print(f"simulator to Kafka:                      {s:,.0f} events/s  ratio {s / c:.2f}")
    print(f"simulator --dry-run generation:          {d:,.0f} events/s  ratio {d / c:.2f}")
    print(f"peak RSS with {args.devices:,} devices:          {rss:,.0f} MB")


if __name__ == "__main__":
    main()
