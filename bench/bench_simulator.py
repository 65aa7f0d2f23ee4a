"""Benchmark: impressions the shop simulator generates per second (end to end: world,
warm-up, simulation, Parquet output). Prints one JSON object.

Same-run baseline: writing the very same output (impressions + events, already in
memory) to Parquet again. ``ratio_to_write_baseline`` = simulation wall time / bare
write time, i.e. what the simulation costs on top of the unavoidable output. The
project target (1M impressions in under 60 s) is reported as ``target_ratio``
= 60 s / projected seconds per million (> 1 means faster than the target).

    .venv/bin/python bench/bench_simulator.py [--users 12000 --items 10000 --days 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq  # noqa: E402

from usr.data.sim.config import SimConfig  # noqa: E402
from usr.data.sim.run import simulate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=12_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cfg = SimConfig(n_users=args.users, n_items=args.items, days=args.days, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_sim_") as tmp:
        out = Path(tmp) / "sim"
        t0 = time.perf_counter()
        stats = simulate(cfg, out, progress=False)
        sim_s = time.perf_counter() - t0

        imps = pq.read_table(out / "impressions.parquet")
        events = pq.read_table(out / "events.parquet")
        t1 = time.perf_counter()
        pq.write_table(imps, Path(tmp) / "imps_again.parquet", compression="zstd", row_group_size=1 << 20)
        pq.write_table(events, Path(tmp) / "events_again.parquet", compression="zstd", row_group_size=1 << 20)
        write_s = time.perf_counter() - t1

    n = stats["impressions"]
    per_million = sim_s / n * 1e6
    result = {
        "benchmark": "simulator_impressions_per_second",
        "users": args.users, "items": args.items, "days": args.days, "warmup_days": cfg.history.warmup_days,
        "impressions": n,
        "events": stats["events"],
        "wall_s": round(sim_s, 3),
        "impressions_per_s": round(n / sim_s, 1),
        "world_build_s": stats["world_build_s"],
        "baseline_write_same_output_s": round(write_s, 3),
        "ratio_to_write_baseline": round(sim_s / write_s, 2),
        "projected_s_per_million": round(per_million, 2),
        "target_s_per_million": 60.0,
        "target_ratio": round(60.0 / per_million, 2),
        "meets_target": per_million < 60.0,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
