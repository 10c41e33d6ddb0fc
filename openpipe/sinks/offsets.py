"""Resetting a sink's stored offsets (`openpipe sinks reset-offsets SINK --to ...`).

Used when a session failed with OffsetsAheadOfTopic: Kafka no longer holds what the sink
stored (topic recreated, broker data lost). Three targets per partition:

- `earliest`: the low watermark: re-read everything the topic holds now. Events already
  stored are not written twice (the sinks' dedupe), dead letters at the same coordinates
  are kept as they are.
- `latest`: the high watermark: skip what is in the topic now, drain only new messages.
- `stored-max`: the stored offset, lowered to the high watermark where it is above it:
  only the partitions that lost data change.

The change is made under every partition's advisory lock (a running session keeps it), so
it never races a session; `dry_run` only reports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import psycopg
from confluent_kafka import Consumer

from openpipe import kafka as kafka_helpers
from openpipe.config import Settings
from openpipe.kafka import make_consumer
from openpipe.sinks.drain import lock_name
from openpipe.sinks.specs import SINKS
from openpipe.sinks.writer import read_offsets
from openpipe.storage import db
from openpipe.storage.db import advisory_unlock, try_advisory_lock

Target = Literal["earliest", "latest", "stored-max"]
TARGETS: tuple[str, ...] = Target.__args__


class SinkBusy(RuntimeError):
    """A session holds a partition's lock: stop it before resetting its offsets."""


@dataclass(frozen=True, slots=True)
class OffsetChange:
    partition: int
    stored: int | None  # None: nothing stored yet
    low: int
    high: int
    new: int

    @property
    def changes(self) -> bool:
        return self.stored != self.new


def plan_reset(
    stored: dict[int, int], marks: dict[int, tuple[int, int]], to: Target
) -> list[OffsetChange]:
    """What each partition's next offset becomes (pure; `marks`: partition -> (low, high))."""
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {', '.join(TARGETS)}, not {to!r}")
    plan = []
    for p, (low, high) in sorted(marks.items()):
        current = stored.get(p)
        if to == "earliest":
            new = low
        elif to == "latest":
            new = high
        else:
            new = min(current, high) if current is not None else low
        plan.append(OffsetChange(p, current, low, high, new))
    return plan


def reset_offsets(
    conn: psycopg.Connection,
    consumer: Consumer,
    sink: str,
    topic: str,
    to: Target,
    *,
    dry_run: bool,
) -> list[OffsetChange]:
    """Plan (and unless dry_run, apply in one transaction) the reset of `sink`'s offsets."""
    marks = kafka_helpers.watermarks(consumer, topic)
    locked: list[int] = []
    try:
        if not dry_run:
            for p in sorted(marks):
                if not try_advisory_lock(conn, lock_name(sink, topic, p)):
                    raise SinkBusy(
                        f"a session of {sink} holds the lock of {topic}[{p}]: stop it first "
                        "(Dagster UI: Terminate the run, and stop the "
                        f"{sink}_lag_sensor so it does not start the next), then retry"
                    )
                locked.append(p)
        plan = plan_reset(read_offsets(conn, sink, topic), marks, to)
        if not dry_run:
            with conn.transaction():
                for change in plan:
                    if change.changes:
                        conn.execute(
                            "INSERT INTO sink_offsets (sink, kafka_topic, kafka_partition, "
                            "next_offset) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (sink, kafka_topic, kafka_partition) DO UPDATE "
                            "SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                            (sink, topic, change.partition, change.new),
                        )
    finally:
        for p in locked:
            advisory_unlock(conn, lock_name(sink, topic, p))
    return plan


def describe(sink: str, topic: str, to: str, plan: list[OffsetChange], dry_run: bool) -> str:
    """A table of the change, one line per partition, for the CLI."""
    head = f"{'would reset' if dry_run else 'reset'} {sink} ({topic}) --to {to}" + (
        " (dry run: nothing changed)" if dry_run else ""
    )
    lines = [head, f"{'partition':>9} {'stored':>12} {'low':>12} {'high':>12} {'new':>12}"]
    for c in plan:
        stored = "-" if c.stored is None else str(c.stored)
        mark = "" if c.changes else "  (unchanged)"
        lines.append(f"{c.partition:>9} {stored:>12} {c.low:>12} {c.high:>12} {c.new:>12}{mark}")
    return "\n".join(lines)


def run_reset(
    connect: Callable[[], psycopg.Connection],
    make_consumer: Callable[[str], Consumer],
    sink: str,
    topic: str,
    to: Target,
    *,
    dry_run: bool,
) -> str:
    """Connect, reset (or dry-run) and describe: what the CLIs call."""
    consumer = make_consumer(f"openpipe-sink-{sink}-reset")
    try:
        with connect() as conn:
            plan = reset_offsets(conn, consumer, sink, topic, to, dry_run=dry_run)
    finally:
        consumer.close()
    return describe(sink, topic, to, plan, dry_run)


def add_reset_parser(sub: argparse._SubParsersAction) -> None:
    """The `reset-offsets` subcommand (also `openpipe sinks reset-offsets`)."""
    reset = sub.add_parser(
        "reset-offsets",
        help="move a sink's stored offsets (after Kafka lost data the sink had stored)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reset.add_argument("sink", choices=sorted(SINKS))
    reset.add_argument("--to", required=True, choices=TARGETS)
    reset.add_argument("--topic", help="the topic whose offsets to move (default: the sink's)")
    reset.add_argument("--dry-run", action="store_true", help="show the change, change nothing")


def reset_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `reset-offsets`; prints the per-partition change; 1 when a session is running."""
    try:
        print(
            run_reset(
                lambda: db.connect(settings, application_name="openpipe-reset", autocommit=True),
                lambda group: make_consumer(settings.kafka.bootstrap_servers, group),
                args.sink,
                args.topic or SINKS[args.sink].topic(settings),
                args.to,
                dry_run=args.dry_run,
            )
        )
    except SinkBusy as exc:
        print(f"reset-offsets: {exc}", file=sys.stderr)
        return 1
    return 0
