"""Run the simulator and write its output directory.

Layout of ``out_dir``:
  events.parquet       raw event log (impression/click/order), time-ordered, EVENT_LOG_SCHEMA
  impressions.parquet  training rows, time-ordered, IMPRESSION_SCHEMA (one row group per day)
  items.parquet        item catalog (ids, categories, brand, price, names)
  users.parquet        user profiles (observable buckets + latent_* ground truth)
  sim_config.json      the full simulator configuration
  stats.json           key statistics (rates per scenario, global-only share, oracle AUCs)
  world_state.npz      the drifting state after the last day (for the live responder)
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from usr.data.events import EVENT_LOG_SCHEMA
from usr.data.sim.config import SimConfig
from usr.data.sim.generator import Simulator
from usr.data.sim.output import build_day_tables
from usr.data.sim.stats import compute_stats
from usr.data.tables import IMPRESSION_SCHEMA

STATE_FILE = "world_state.npz"
CONFIG_FILE = "sim_config.json"


def simulate(config: SimConfig, out_dir: str | Path, progress: bool = True,
             on_day: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate ``config.days`` days and write ``out_dir``; returns the statistics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim = Simulator(config)
    t_world = time.perf_counter() - t0
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    pq.write_table(sim.world.catalog.to_table(), out / "items.parquet")
    pq.write_table(sim.world.users.to_table(), out / "users.parquet")

    prefix = f"s{config.seed}"
    acc: dict[str, list[np.ndarray]] = {}
    n_pairs = n_both = n_imps = n_events = 0
    bar = tqdm(total=config.days, unit="day", desc="simulate", disable=not progress, file=sys.stderr)
    with pq.ParquetWriter(out / "impressions.parquet", IMPRESSION_SCHEMA, compression="zstd") as imp_w, \
            pq.ParquetWriter(out / "events.parquet", EVENT_LOG_SCHEMA, compression="zstd") as ev_w:
        for day in range(config.days):
            res = sim.run_day(day)
            tables = build_day_tables(sim, res, prefix)
            imp_w.write_table(tables.impressions, row_group_size=1 << 20)
            ev_w.write_table(tables.events, row_group_size=1 << 20)
            for k, v in tables.stats.items():
                acc.setdefault(k, []).append(v)
            n_pairs += tables.n_pairs
            n_both += tables.n_pairs_both
            n_imps += tables.impressions.num_rows
            n_events += tables.events.num_rows
            bar.update(1)
            bar.set_postfix(impressions=n_imps, events=n_events)
            if on_day:
                on_day(day, n_imps)
    bar.close()
    np.savez(out / STATE_FILE, **sim.world.state_arrays())
    arrays = {k: np.concatenate(v) for k, v in acc.items()}
    stats = compute_stats(arrays, n_pairs, n_both)
    wall = time.perf_counter() - t0
    stats.update({
        "events": n_events,
        "days": config.days, "users": config.n_users, "items": config.n_items, "seed": config.seed,
        "wall_s": round(wall, 3), "world_build_s": round(t_world, 3),
        "impressions_per_s": round(n_imps / wall, 1) if wall > 0 else None,
    })
    stats = json_safe(stats)
    (out / "stats.json").write_text(json.dumps(stats, indent=2, allow_nan=False))
    return stats


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON has no NaN; e.g. AUC with one class)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def load_config_from_dir(out_dir: str | Path) -> SimConfig:
    return SimConfig.from_dict(json.loads((Path(out_dir) / CONFIG_FILE).read_text()))
