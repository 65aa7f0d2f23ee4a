"""``usr replay``: publish an event log to Kafka in time order.

    usr replay DIR|events.parquet [--rate EVENTS_PER_S] [--limit N] [--acks 1|all]
               [--no-validate] [--event-time] [--no-progress]

Topics and brokers come from the configuration (``kafka.bootstrap``,
``kafka.topics.impressions|clicks|orders``). Progress goes to stderr; a JSON summary
(events, seconds, events_per_s, by_type, invalid, failed) to stdout. Exit code 1 if any
send failed or a row was invalid.
"""
from __future__ import annotations

import argparse
import json

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="simulator output directory (reads events.parquet) or a Parquet event log")
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    parser.add_argument("--limit", type=int, help="publish at most N events")
    parser.add_argument("--acks", choices=("1", "all"), default="1", help="producer acks (default 1)")
    parser.add_argument("--linger-ms", type=int, default=5, help="producer batching delay (default 5 ms)")
    parser.add_argument("--no-validate", action="store_true", help="publish rows without schema validation")
    parser.add_argument("--event-time", action="store_true",
                        help="stamp messages with the event ts (old logs then fall under time retention)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace, config: Config) -> int:
    from usr.data.replay import events_file, make_kafka_producer, replay

    path = events_file(args.source)
    if not path.is_file():
        print(f"usr replay: no event log at {path}")
        return 2
    if args.rate is not None and args.rate <= 0:
        print("usr replay: --rate must be > 0")
        return 2
    try:
        producer = make_kafka_producer(config.kafka, acks=args.acks, linger_ms=args.linger_ms)
    except Exception as exc:  # kafka.errors.NoBrokersAvailable and friends
        print(f"usr replay: cannot connect to Kafka at {config.kafka.bootstrap}: {exc}")
        return 2
    try:
        summary = replay(path, producer, config.kafka.topics, rate=args.rate, limit=args.limit,
                         validate=not args.no_validate, event_time=args.event_time,
                         progress=not args.no_progress)
    finally:
        producer.close()
    print(json.dumps({"source": str(path), "bootstrap": config.kafka.bootstrap, **summary.to_dict()}, indent=2))
    return 1 if summary.failed or summary.invalid else 0
