"""Training throughput of every base model with and without USR, measured in one run.

Prints one JSON object: per base the samples/s of a full training step (forward, loss,
backward, optimiser) for the base and for base+USR, and the ratio USR/base. Batches are
built once (from --data, else a random table) so the numbers compare the models, not the
input pipeline; base and USR are timed alternately for --rounds rounds and the best round
of each counts, which damps the noise of a shared machine.

    .venv/bin/python bench/bench_train.py [--data DIR] [--batch-size 1024] [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from features.spec import FeatureSpec  # noqa: E402
from features.tensors import build_inputs  # noqa: E402
from model.configs import BASE_NAMES, get_config  # noqa: E402
from model.data import BatchStream, build_labels  # noqa: E402
from model.losses import ranking_loss  # noqa: E402
from model.train import TrainConfig, Trainer, make_model  # noqa: E402


def load_batches(data: str | None, spec: FeatureSpec, batch_size: int, n: int):
    if data and Path(data).exists():
        stream = BatchStream(data, spec, list(range(0, 10_000)), batch_size, drop_last=True, prefetch=0)
        batches = []
        for item in stream:
            batches.append(item)
            if len(batches) == n:
                break
        return batches, str(data)
    from model.synthetic import random_impressions

    table = random_impressions(batch_size * n, seed=0, n_users=5000, n_items=20000)
    return [(build_inputs(spec, table.slice(i * batch_size, batch_size)),
             build_labels(table.slice(i * batch_size, batch_size))) for i in range(n)], "random table (model.synthetic)"


def time_steps(trainer: Trainer, batches, steps: int) -> float:
    module, cfg = trainer.module, trainer.model_config
    module.train()
    samples = 0
    start = time.perf_counter()
    for i in range(steps):
        inputs, labels = batches[i % len(batches)]
        out = module(**inputs)
        loss, _ = ranking_loss(out, labels, cfg)
        for opt in trainer.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in trainer.optimizers:
            opt.step()
        samples += inputs["scenario"].size(0)
    return samples / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/sim_small", help="impression table dir (falls back to a random table)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base", action="append", help="only these bases (display names)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = FeatureSpec()
    batches, source = load_batches(args.data, spec, args.batch_size, 8)
    results: dict[str, dict[str, float]] = {}
    for base in args.base or list(BASE_NAMES):
        trainers = {}
        for variant in (base, f"{base}+USR"):
            model = make_model(get_config(variant), spec, 0)
            trainers[variant] = Trainer(model, TrainConfig(progress=False, threads=args.threads), "/tmp/bench_train_unused")
            time_steps(trainers[variant], batches, 3)  # warm-up
        best = {v: 0.0 for v in trainers}
        for _ in range(args.rounds):
            for variant, trainer in trainers.items():
                best[variant] = max(best[variant], time_steps(trainer, batches, args.steps))
        results[base] = {"base_samples_per_s": round(best[base], 1),
                         "usr_samples_per_s": round(best[f"{base}+USR"], 1),
                         "usr_over_base": round(best[f"{base}+USR"] / best[base], 3)}
        print(f"{base}: {results[base]}", file=sys.stderr, flush=True)
    print(json.dumps({
        "benchmark": "train_step_throughput",
        "data": source, "batch_size": args.batch_size, "steps_per_round": args.steps, "rounds": args.rounds,
        "torch_threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "history_len": spec.history_len,
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
