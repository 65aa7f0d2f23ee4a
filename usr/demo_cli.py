"""``usr demo [--preset default|small] [--out DIR]``: the end-to-end demo."""
from __future__ import annotations

import argparse
from pathlib import Path

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from usr.demo.presets import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--out", type=Path, help="report and the demo's run directory (default: <run.dir>/demo)")
    parser.add_argument("--live-requests", type=int, help="override the preset's number of live requests")
    parser.add_argument("--no-ab", action="store_true", help="serve only base+USR (no A/B test)")
    parser.add_argument("--keep-stack", action="store_true", help="leave the demo's stack running")


def run(args: argparse.Namespace, config: Config) -> int:
    import signal

    from usr.demo.presets import get_preset
    from usr.demo.run import run_demo

    def interrupted(signum, frame):  # SIGTERM too: stop the demo's stack on the way out
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)

    preset = get_preset(args.preset, live_requests=args.live_requests, ab=False if args.no_ab else None)
    report = run_demo(config, preset, (args.out or config.run.dir / "demo").resolve(), keep_stack=args.keep_stack)
    print(report)
    return 0
