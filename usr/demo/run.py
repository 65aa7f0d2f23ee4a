"""``usr demo``: the whole system on the embedded defaults, end to end.

1. simulate a few days of a shop with search and recommendation (known ground truth);
2. start the stack (Apache Kafka, Feast online store, Triton, stream workers, gateway);
3. install the catalog, replay the log through Kafka; the stream jobs build online
   features and labelled rows;
4. train and serve the first model of each A/B arm (base, base+USR) from those rows;
5. drive live simulated shoppers through the gateway while retraining on a schedule;
6. write the report (markdown + PNG) and stop the stack.
"""
from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from usr.config import Config
from usr.demo.presets import DemoPreset


def log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def demo_config(config: Config, preset: DemoPreset, run_dir: Path) -> Config:
    """The user's configuration, with the demo's own run directory and model repository."""
    return config.model_copy(update={
        "run": config.run.model_copy(update={"dir": run_dir}),
        "triton": config.triton.model_copy(update={"model_repository": run_dir / "triton_repo"}),
        "retrain": config.retrain.model_copy(update={
            "epochs": preset.epochs, "min_new_rows": max(200, preset.live_requests // 2),
            "data_dir": None, "registry_dir": None}),
    })


def arm_config(config: Config, model_name: str, model_block: str) -> Config:
    return config.model_copy(update={
        "triton": config.triton.model_copy(update={"model_name": model_name}),
        "retrain": config.retrain.model_copy(update={"model": model_block}),
    })


def oracle_on_holdout(sim_dir: Path, window: dict[str, Any]) -> dict[str, float]:
    """AUC of the simulator's true probabilities on the holdout's impressions (the ceiling).
    The stream-built rows carry no truth; the simulator's table has it for the same events."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from usr.data.metrics import auc

    t = pq.read_table(sim_dir / "impressions.parquet", columns=["ts", "scenario", "click", "order", "p_click", "p_ctcvr"])
    t = t.filter(pc.and_(pc.greater_equal(t["ts"], window["holdout_from_ts"]), pc.less_equal(t["ts"], window["newest_ts"])))
    out = {}
    for scenario in ("search", "rec"):
        s = t.filter(pc.equal(t["scenario"], scenario))
        click = s["click"].to_numpy()
        out[f"oracle_{scenario}_ctr_auc"] = auc(click, s["p_click"].to_numpy())
        out[f"oracle_{scenario}_ctcvr_auc"] = auc(click * s["order"].to_numpy(), s["p_ctcvr"].to_numpy())
    return out


class Scheduler:
    """Retrains every arm every ``every_s`` seconds in a background thread."""

    def __init__(self, arm_configs: dict[str, Config], every_s: float) -> None:
        self.arm_configs, self.every_s = arm_configs, every_s
        self.stop = threading.Event()
        self.runs: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from model.retrain import retrain_once

        while not self.stop.wait(self.every_s):
            for arm, cfg in self.arm_configs.items():  # a round, once started, retrains every arm
                t0 = time.perf_counter()
                record = retrain_once(cfg, progress=False)
                decision = record.decision if record else "skipped"
                self.runs.append({"arm": arm, "decision": decision, "seconds": round(time.perf_counter() - t0, 1),
                                  "version": record.version if record else None})
                log(f"scheduled retrain of {cfg.triton.model_name}: {decision}"
                    + (f" (v{record.version}: {record.reason})" if record else ""))

    def __enter__(self) -> "Scheduler":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(600)


def run_demo(config: Config, preset: DemoPreset, out: Path, keep_stack: bool = False) -> Path:
    from features.store import apply_definitions
    from gateway.scorer import wait_until_repository_version_served
    from model.registry import Registry
    from model.retrain import registry_dir, retrain_once
    from streams.catalog import install
    from streams.progress import wait_caught_up
    from streams.publish import publish_log
    from usr.data.sim.config import SimConfig
    from usr.data.sim.live import LiveShop
    from usr.data.sim.run import simulate
    from usr.demo.live import FreshnessProbe, run_live
    from usr.demo.report import write_report
    from usr.stack import manager

    t_all = time.perf_counter()
    phases: dict[str, float] = {}
    run_dir = out / "run"
    manager.down(demo_config(config, preset, run_dir))  # a previous demo's services, if any
    if out.exists():
        shutil.rmtree(out)
    cfg = demo_config(config, preset, run_dir)
    sim_dir = out / "shop"

    t0 = time.perf_counter()
    log(f"simulating {preset.days} days: {preset.users} shoppers, {preset.items} items")
    stats = simulate(SimConfig(days=preset.days, n_users=preset.users, n_items=preset.items, seed=preset.seed),
                     sim_dir, progress=True)
    phases["simulate"] = time.perf_counter() - t0
    log(f"simulated {stats.get('impressions', '?')} impressions")

    t0 = time.perf_counter()
    apply_definitions(cfg)
    catalog = install(cfg, sim_dir)
    log(f"catalog installed: {catalog['items']} items, {catalog['users']} users")
    manager.up(cfg)
    phases["stack_up"] = time.perf_counter() - t0
    ports = [cfg.streams.web_port_base + i for i in range(cfg.streams.workers)]
    try:
        t0 = time.perf_counter()
        log("replaying the log through Kafka")
        replay = publish_log(cfg, sim_dir, close=False, progress=True)
        statuses = wait_caught_up(cfg, ports, timeout_s=900, require_drained=False)
        phases["replay_and_streams"] = time.perf_counter() - t0
        stream_stats = {"events_replayed": replay.get("events"), "replay_events_per_s": replay.get("events_per_s"),
                        "stream_seconds": round(phases["replay_and_streams"], 1),
                        "workers": len(statuses)}
        log(f"streams caught up: {json.dumps(stream_stats)}")

        arms = {"A": ("usr_base", preset.base_model), "B": ("usr", preset.usr_model)} if preset.ab else \
            {"B": ("usr", preset.usr_model)}
        arm_cfgs = {arm: arm_config(cfg, name, block) for arm, (name, block) in arms.items()}
        t0 = time.perf_counter()
        offline: dict[str, dict] = {}
        oracle: dict[str, float] = {}
        for arm, acfg in arm_cfgs.items():
            log(f"training the first {acfg.retrain.model} model on the stream-built rows")
            record = retrain_once(acfg, progress=True)
            if record is None or record.decision != "promoted":
                raise RuntimeError(f"first model of arm {arm} was not promoted: {record and record.reason}")
            offline[f"{acfg.retrain.model} (arm {arm})"] = record.metrics["candidate"]
            oracle = oracle or oracle_on_holdout(sim_dir, record.data_window)
            wait_until_repository_version_served(acfg, acfg.triton.model_name, record.version)
        phases["first_models"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        shop = LiveShop.from_dir(sim_dir, seed=preset.seed + 1, mean_gap_ms=preset.mean_gap_ms,
                                 run_id=f"demo{int(time.time())}")
        address = f"{cfg.gateway.host}:{cfg.gateway.port}"
        freshness = FreshnessProbe(cfg)
        log(f"live traffic: {preset.live_requests} requests, arms {arms}")

        def progress(k: int, rec) -> None:
            if (k + 1) % max(1, preset.live_requests // 10) == 0:
                log(f"live {k + 1}/{preset.live_requests}: arm {rec.arm} v{rec.model_version} "
                    f"{rec.latency_ms:.1f} ms{' FALLBACK' if rec.fallback else ''}")

        with Scheduler(arm_cfgs, preset.retrain_every_s) as scheduler:
            records = run_live(cfg, shop, address, {arm: name for arm, (name, _) in arms.items()},
                               preset.live_requests, preset.candidates, freshness, preset.freshness_every, progress)
            log("live traffic done; waiting for a running retrain to finish")
        freshness.close()
        if freshness.errors:
            log(f"{len(freshness.errors)} freshness probes failed, first: {freshness.errors[0]}")
        phases["live_and_retrain"] = time.perf_counter() - t0
        retrains = {acfg.triton.model_name: [asdict(r) for r in Registry(registry_dir(acfg)).records()]
                    for acfg in arm_cfgs.values()}
        phases["total"] = time.perf_counter() - t_all
        report = write_report(out, preset=asdict(preset), phases={k: round(v, 1) for k, v in phases.items()},
                              offline=offline, oracle=oracle, records=records, freshness_ms=freshness.samples_ms,
                              freshness_timeouts=freshness.timeouts + len(freshness.errors), retrains=retrains,
                              stream_stats=stream_stats,
                              arms={arm: name for arm, (name, _) in arms.items()})
        log(f"scheduled retrains: {scheduler.runs}")
        log(f"report: {report} (total {phases['total']:.0f} s)")
        return report
    finally:
        if not keep_stack:
            manager.down(cfg)
