"""A stream worker process: ``python -m streams.worker --index I [--config FILE]``.

Worker ``I`` joins the consumer group ``streams.app_id`` (several workers share the
partitions), serves ``/status`` on ``streams.web_port_base + I``, and runs until
SIGTERM/SIGINT (graceful) or SIGKILL (nothing is lost: the next owner of its partitions
resumes from their checkpoints). The configuration comes from ``--config`` /
``$USR_CONFIG`` and ``USR__...`` environment variables like every other command.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import uuid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0, help="worker number (web port = web_port_base + index)")
    parser.add_argument("--config", help="YAML config file (default: $USR_CONFIG or the embedded defaults)")
    parser.add_argument("--loglevel", default="info", choices=("crit", "error", "warn", "info", "debug"))
    args = parser.parse_args(argv)

    from usr.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"streams.worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "feast", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import faust

    from features.store import offline_dir
    from streams.app import ensure_stream_topics, make_app
    from streams.processor import Processor
    from streams.sink_feast import FeastSink
    from streams.sink_offline import RowSink

    ensure_stream_topics(config)
    processor = Processor(config, FeastSink(config), RowSink(offline_dir(config)),
                          worker=f"streams-{args.index}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    app, _ = make_app(config, args.index, processor)
    # long-lived process holding feast/pandas objects: keep gen-2 collections out of the hot path
    gc.collect()
    gc.freeze()
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
