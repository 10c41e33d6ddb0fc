"""CLI: `python -m openpipe.sinks migrate | maintain | drain <sink> [--topic T] | session <sink> |
reset-offsets <sink> --to earliest|latest|stored-max [--dry-run]` (drain prints JSON)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading

from openpipe.config import load_settings
from openpipe.kafka import make_consumer
from openpipe.sinks.drain import DrainResult, SinkSession, drain_topic
from openpipe.sinks.offsets import add_reset_parser, reset_command
from openpipe.sinks.specs import SINKS
from openpipe.storage import db
from openpipe.storage.schema import apply_migrations, maintain_partitions


def run_session(settings, args, connect) -> DrainResult:
    """One SinkSession; SIGTERM and SIGINT end it after the transaction in flight."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with SinkSession(
        SINKS[args.sink],
        settings,
        connect=connect,
        make_consumer=lambda group: make_consumer(settings.kafka.bootstrap_servers, group),
        topic=args.topic,
        shard=args.shard,
        shards=args.shards,
        stop=stop,
    ) as session:
        return session.run(seconds=args.seconds)


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m openpipe.sinks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending migrations from sql/migrations")
    sub.add_parser("maintain", help="create partitions ahead and drop expired ones")
    drain = sub.add_parser("drain", help="drain one micro-batch of a sink's topic")
    drain.add_argument("sink", choices=sorted(SINKS))
    drain.add_argument("--topic", help="read this topic instead of the configured one")
    drain.add_argument("--max-messages", type=int)
    drain.add_argument("--max-seconds", type=float)
    drain.add_argument("--until-empty", action="store_true", help="repeat until lag is 0")
    session = sub.add_parser(
        "session",
        help="run one sink session (what a Dagster run of the sink does); SIGTERM ends it",
    )
    session.add_argument("sink", choices=sorted(SINKS))
    session.add_argument("--topic", help="read this topic instead of the configured one")
    session.add_argument("--seconds", type=float, help="default: pipeline.session_seconds")
    session.add_argument("--shard", type=int, default=0)
    session.add_argument("--shards", type=int, help="default: pipeline.sink_shards")
    add_reset_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()

    def connect():
        return db.connect(settings, application_name="openpipe-sink-cli", autocommit=True)

    if args.command == "reset-offsets":
        return reset_command(settings, args)
    if args.command == "session":
        result = run_session(settings, args, connect)
        print(json.dumps(dataclasses.asdict(result), default=str), flush=True)
        return 0
    if args.command == "migrate":
        with connect() as conn:
            report = apply_migrations(conn, settings)
        print(json.dumps(dataclasses.asdict(report), indent=2))
    elif args.command == "maintain":
        with connect() as conn:
            print(json.dumps(maintain_partitions(conn, settings), indent=2))
    else:
        while True:
            result = drain_topic(
                SINKS[args.sink],
                settings,
                connect=connect,
                make_consumer=lambda group: make_consumer(settings.kafka.bootstrap_servers, group),
                topic=args.topic,
                max_messages=args.max_messages,
                max_seconds=args.max_seconds,
            )
            print(json.dumps(dataclasses.asdict(result), default=str), flush=True)
            if not args.until_empty or result.skipped_reason or result.total_lag == 0:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
