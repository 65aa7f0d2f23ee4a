"""Watermark control messages, and publishing a closed log (events + end-of-log markers).

A watermark ``{"control": "watermark", "ts": T}`` sent to every partition of the three
event topics tells the workers that no event older than ``T`` (minus the lateness
bound) will follow on that topic-partition. It is in-band, so it takes effect only
after everything published before it has been read. ``T = END_OF_LOG_TS`` closes a log:
every remaining impression gets its labels and every waiting order its decision.
Producers with sparse topics (few orders) can send watermarks as heartbeats.

    python -m streams.publish DIR [--no-close]     # usr replay DIR + end-of-log markers
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.state import END_OF_LOG_TS
from usr.config import Config


def watermark_message(ts: int) -> bytes:
    return json.dumps({"control": "watermark", "ts": int(ts)}, separators=(",", ":")).encode()


def send_watermarks(config: Config, ts: int = END_OF_LOG_TS, producer: Any = None) -> int:
    """Send a watermark to every partition of the three event topics; returns the count."""
    from usr.data.replay import make_kafka_producer

    own = producer is None
    producer = producer or make_kafka_producer(config.kafka, acks="all")
    t = config.kafka.topics
    n = 0
    try:
        futures = []
        for topic in (t.impressions, t.clicks, t.orders):
            parts = producer.partitions_for(topic) or range(t.partitions)
            for p in sorted(parts):
                futures.append(producer.send(topic, value=watermark_message(ts), key=b"__watermark__", partition=p))
                n += 1
        producer.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        if own:
            producer.close()
    return n


def publish_log(config: Config, source: str | Path, close: bool = True, progress: bool = False) -> dict[str, Any]:
    """Publish an event log with ``usr replay``'s publisher, then (``close``) end-of-log markers."""
    from usr.data.replay import make_kafka_producer, replay

    producer = make_kafka_producer(config.kafka, acks="all")
    try:
        summary = replay(source, producer, config.kafka.topics, progress=progress).to_dict()
        if close:
            summary["watermarks"] = send_watermarks(config, END_OF_LOG_TS, producer)
    finally:
        producer.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    from usr.config import load_config

    parser = argparse.ArgumentParser(prog="python -m streams.publish", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="simulator directory or events.parquet")
    parser.add_argument("--config")
    parser.add_argument("--no-close", action="store_true", help="do not send end-of-log markers")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    print(json.dumps(publish_log(config, args.source, close=not args.no_close, progress=True), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
