"""``usr stack up|status|down|logs``."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from usr.config import Config
from usr.stack import manager


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    for action, help_text in (("up", "start the services and wait until healthy"),
                              ("status", "show each service and whether it answers"),
                              ("down", "stop every service; leaves no process or port behind")):
        p = sub.add_parser(action, help=help_text)
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    logs = sub.add_parser("logs", help="print a service's log")
    logs.add_argument("service", nargs="?", help="kafka | redis | triton | ... (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")


def _print_table(statuses: list[manager.ServiceStatus]) -> None:
    print(f"{'service':<8} {'mode':<9} {'healthy':<8} {'pid':>7} {'rss MiB':>8}  detail")
    for s in statuses:
        rss = f"{s.rss_mb:.0f}" if s.rss_mb is not None else "-"
        print(f"{s.name:<8} {s.mode:<9} {'yes' if s.healthy else 'NO':<8} {s.pid or '-':>7} {rss:>8}  {s.detail}")


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "logs":
        paths = manager.run_paths(config)
        files = [paths.logfile(args.service)] if args.service else sorted(paths.logs.glob("*.log"))
        cmd = ["tail", f"-n{args.lines}"] + (["-F"] if args.follow else []) + [str(f) for f in files]
        return subprocess.call(cmd)
    if args.action == "down":
        stopped = manager.down(config)
        if args.json:
            print(json.dumps({"stopped": stopped}))
        return 0
    try:
        statuses = manager.up(config) if args.action == "up" else manager.status(config)
    except RuntimeError as exc:
        print(f"usr stack {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        _print_table(statuses)
    return 0 if all(s.healthy for s in statuses) else 1
