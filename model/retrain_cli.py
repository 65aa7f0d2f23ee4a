"""``usr retrain [--every DURATION]``: incremental retraining with a validation gate."""
from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
import time
from dataclasses import asdict

from usr.config import Config

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '1d' or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", type=parse_duration, help="run on a schedule (e.g. 1h) until stopped")
    parser.add_argument("--runs", type=int, default=0, help="with --every: stop after this many runs (0: forever)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_once(config: Config, progress: bool) -> int:
    from model.retrain import registry_dir, retrain_once
    from model.retrain_metrics import observe
    from model.repository import serving_version

    record = retrain_once(config, progress=progress)
    serving = serving_version(config.triton.model_repository, config.triton.model_name)
    observe(record, serving, registry_dir(config) / "retrain.prom", time.time())
    summary = {"decision": "skipped"} if record is None else {
        k: v for k, v in asdict(record).items() if k in ("version", "parent", "decision", "reason", "train_seconds")}
    summary["serving_version"] = serving
    print(json.dumps(summary), flush=True)
    return 1 if record is not None and record.decision == "failed" else 0


def run(args: argparse.Namespace, config: Config) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.every:
        return _run_once(config, progress=not args.quiet)
    from prometheus_client import start_http_server

    from model.retrain_metrics import REGISTRY

    start_http_server(config.retrain.metrics_port, addr="0.0.0.0", registry=REGISTRY)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    done = 0
    while not stop.is_set():
        _run_once(config, progress=not args.quiet)  # a failed run is recorded; the schedule goes on
        done += 1
        if args.runs and done >= args.runs:
            break
        stop.wait(args.every)
    print(f"usr retrain: stopped after {done} run(s)", file=sys.stderr)
    return 0
