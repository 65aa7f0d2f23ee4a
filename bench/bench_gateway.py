"""Ranking latency and throughput: the gateway (gRPC, Feast online store with an item
cache, Triton) against a naive in-process path (Feast get_online_features per request
plus eager PyTorch), measured in the same run. 200 candidates per request.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_gateway.py [--requests N]``
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_USERS, N_ITEMS, CANDIDATES = 2000, 5000, 200


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}


def load(call, concurrency: int, requests: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, N_USERS + 1, requests)
    cands = [rng.choice(np.arange(1, N_ITEMS + 1), CANDIDATES, replace=False).tolist() for _ in range(requests)]
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        call(int(users[i]), cands[i])
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)

    for i in range(min(20, requests)):  # warm-up
        one(i)
    latencies.clear()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": requests, "rps": round(requests / wall, 1), **percentiles(latencies)}


def write_features(config) -> None:
    import pandas as pd

    from features.store import apply_definitions

    store = apply_definitions(config)
    rng = np.random.default_rng(0)
    now = pd.Timestamp.now(tz="UTC")
    users = np.arange(1, N_USERS + 1)
    items = np.arange(1, N_ITEMS + 1)
    store.write_to_online_store("user_profile", pd.DataFrame({
        "user_id": users, "user_segment": rng.integers(1, 20, len(users)), "user_level": rng.integers(1, 6, len(users)),
        "event_timestamp": now}))
    hist = [rng.integers(1, N_ITEMS + 1, 50).tolist() for _ in users]
    store.write_to_online_store("user_history", pd.DataFrame({
        "user_id": users, "hist_item_id": hist, "hist_cate2": [[h % 200 + 1 for h in x] for x in hist],
        "hist_brand": [[h % 900 + 1 for h in x] for x in hist], "hist_source": [[1 + h % 2 for h in x] for x in hist],
        "hist_action": [[1] * 50 for _ in hist], "hist_query": [[""] * 50 for _ in hist],
        "hist_ts": [[0] * 50 for _ in hist], "last_event_ts": 0, "event_timestamp": now}))
    store.write_to_online_store("item_catalog", pd.DataFrame({
        "item_id": items, "cate1": items % 20 + 1, "cate2": items % 200 + 1, "brand": items % 900 + 1,
        "price_bucket": items % 10 + 1, "event_timestamp": now}))
    store.write_to_online_store("item_popularity", pd.DataFrame({
        "item_id": items, "impressions": 100, "clicks": items % 7, "orders": 0,
        "ctr": (items % 7 / 100).astype(np.float32), "event_timestamp": now}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()

    import torch

    from features.spec import FeatureSpec
    from features.store import open_store
    from features.tensors import build_inputs
    from gateway.client import RankingClient
    from gateway.online_features import FeastRefs
    from tests.conftest import stack_config
    from tests.integration.gateway_fixtures import wait_model_version
    from usr.stack import process
    from usr.stack.process import RunPaths
    from usr.stack.services import services

    tmp = Path(tempfile.mkdtemp(prefix="bench_gateway_"))
    config = stack_config(tmp, USR__KAFKA__MODE="external", USR__KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1",
                          USR__STREAMS__WORKERS="0")
    torch.set_num_threads(config.triton.threads)  # the naive path gets the threads Triton's model gets
    paths = RunPaths(config.run.dir).ensure()
    svc = {s.name: s for s in services(config)}
    result: dict = {"benchmark": "gateway_rank_latency", "candidates": CANDIDATES, "cpu_count": 2,
                    "model": "MMoE+USR", "torch_threads": config.triton.threads}
    started: list[str] = []
    try:
        print("[bench] writing online features", file=sys.stderr)
        write_features(config)
        from model.configs import build_model
        from model.export import script_model
        from model.triton_export import publish

        torch.manual_seed(0)
        model = build_model("MMoE+USR", FeatureSpec()).eval()
        version = publish(script_model(model), model.spec, config.triton.model_repository, config.triton.model_name)
        for name in ("triton", "gateway"):
            print(f"[bench] starting {name}", file=sys.stderr)
            svc[name].start(paths)
            started.append(name)
            if not process.wait_until(lambda s=svc[name]: s.check().ok, 120, 0.25):
                raise RuntimeError(f"{name} did not become healthy: {svc[name].check().detail}")
        wait_model_version(config, version)
        address = f"{config.gateway.host}:{config.gateway.port}"
        clients = threading.local()

        def gateway_call(user: int, cands: list[int]) -> None:
            if not hasattr(clients, "c"):
                clients.c = RankingClient(address, timeout_s=5)
            reply = clients.c.rank(user, "rec", cands)
            assert not reply.fallback and len(reply.items) == len(cands), reply.fallback_reason

        # naive: Feast get_online_features for the user and every candidate, eager PyTorch, in process
        store = open_store(config)
        refs = FeastRefs()
        user_refs, item_refs = list(refs.user.values()), list(refs.item.values())
        eager_lock = threading.Lock()

        def naive_call(user: int, cands: list[int]) -> None:
            u = store.get_online_features(features=user_refs, entity_rows=[{"user_id": user}]).to_dict()
            it = store.get_online_features(features=item_refs, entity_rows=[{"item_id": c} for c in cands]).to_dict()
            n = len(cands)
            rows = {"scenario": ["rec"] * n, "user_id": [user] * n, "item_id": cands,
                    **{k: [u[k][0] or 0] * n for k in ("user_segment", "user_level")},
                    **{k: [list(u[k][0] or [])] * n for k in ("hist_item_id", "hist_cate2", "hist_brand",
                                                               "hist_source", "hist_action")},
                    **{k: [v or 0 for v in it[k]] for k in ("cate1", "cate2", "brand", "price_bucket")}}
            inputs = build_inputs(model.spec, rows, allow_missing=True)
            with eager_lock, torch.no_grad():  # one torch model, as one process would serve it
                out = model(**inputs)
            order = torch.argsort(out["ctcvr"], descending=True)
            assert len(order) == n

        for name, call in (("gateway", gateway_call), ("naive", naive_call)):
            for conc in (1, 8):
                print(f"[bench] {name} at concurrency {conc}", file=sys.stderr)
                result[f"{name}_c{conc}"] = load(call, conc, args.requests, seed=conc)
        for conc in (1, 8):
            result[f"throughput_ratio_c{conc}"] = round(result[f"gateway_c{conc}"]["rps"] / result[f"naive_c{conc}"]["rps"], 2)
        result["target_p99_ms_c1"] = 15.0
        result["meets_p99_target"] = result["gateway_c1"]["p99_ms"] <= 15.0
        result["meets_3x_throughput"] = min(result["throughput_ratio_c1"], result["throughput_ratio_c8"]) >= 3.0
        try:
            import urllib.request

            text = urllib.request.urlopen(f"http://{config.gateway.host}:{config.gateway.metrics_port}/metrics",
                                          timeout=5).read().decode()
            result["gateway_stage_mean_ms"] = stage_means(text)
        except OSError:
            pass
    finally:
        for name in reversed(started):
            process.stop(paths, name, first_signal=svc[name].stop_signal)
    print(json.dumps(result, indent=2))
    return 0


def stage_means(metrics_text: str) -> dict[str, float]:
    sums, counts = {}, {}
    for line in metrics_text.splitlines():
        if line.startswith("usr_gateway_stage_seconds_sum"):
            stage = line.split('stage="')[1].split('"')[0]
            sums[stage] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("usr_gateway_stage_seconds_count"):
            stage = line.split('stage="')[1].split('"')[0]
            counts[stage] = float(line.rsplit(" ", 1)[1])
    return {s: round(1000 * sums[s] / counts[s], 3) for s in sums if counts.get(s)}


if __name__ == "__main__":
    raise SystemExit(main())
