"""``usr simulate``: simulate the grocery shop and write an event log + impression table.

    usr simulate --out DIR --days D --users U --items I --seed S [--sim-config FILE.json]

Writes DIR/events.parquet, impressions.parquet, items.parquet, users.parquet,
sim_config.json, stats.json, world_state.npz (see :mod:`usr.data.sim.run`), shows
progress on stderr and prints the key statistics as JSON on stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from usr.config import Config
from usr.data.sim.config import SimConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--days", type=int, help="days to simulate (default 7)")
    parser.add_argument("--users", type=int, help="number of shoppers (default 10000)")
    parser.add_argument("--items", type=int, help="number of items (default 10000)")
    parser.add_argument("--seed", type=int, help="random seed: same seed, same output (default 0)")
    parser.add_argument("--sim-config", help="JSON file with simulator parameters (e.g. a saved sim_config.json); "
                                             "--days/--users/--items/--seed, where given, override it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_sim_config(args: argparse.Namespace) -> SimConfig:
    base = SimConfig()
    if args.sim_config:
        base = SimConfig.from_dict(json.loads(Path(args.sim_config).read_text()))
    given = {"n_users": args.users, "n_items": args.items, "days": args.days, "seed": args.seed}
    return base.replace(**{k: v for k, v in given.items() if v is not None})


def _summary(stats: dict) -> dict:
    keys = ("impressions", "events", "global_only_click_share", "global_only_share_of_global_clicks",
            "cross_scenario_pair_share", "oracle_auc", "wall_s", "impressions_per_s")
    out = {k: stats[k] for k in keys}
    out["scenarios"] = {s: {k: v[k] for k in ("impressions", "ctr", "cvr", "ctcvr", "global_ctr")}
                        for s, v in stats["scenarios"].items()}
    return out


def run(args: argparse.Namespace, config: Config) -> int:
    del config  # the simulator needs no service configuration
    from usr.data.sim.run import simulate

    for name in ("days", "users", "items"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"usr simulate: --{name} must be >= 1")
            return 2
    try:
        sim_config = build_sim_config(args)
        stats = simulate(sim_config, args.out, progress=not args.no_progress)
    except ValueError as exc:
        print(f"usr simulate: {exc}")
        return 2
    print(json.dumps(_summary(stats), indent=2))
    return 0
