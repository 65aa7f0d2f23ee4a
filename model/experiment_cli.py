"""``usr experiment``: each base model with and without USR (and the ablation), over seeds."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from features.spec import FeatureSpec
from model.configs import BASE_NAMES
from model.train import TrainConfig

# --quick: all six bases with and without USR in a few minutes on 2 cores
QUICK = {"epochs": 1, "max_train_rows": 60_000, "batch_size": 512, "jobs": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="directory with impressions.parquet (from `usr simulate`)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--base", action="append", metavar="NAME",
                        help=f"base model (repeatable; default: all six: {', '.join(BASE_NAMES)})")
    parser.add_argument("--seeds", type=int, help="seeds per variant (default 3, --quick 1)")
    parser.add_argument("--ablations", action="store_true", help="also train base+USR without IE / FG / GLMT / CL")
    parser.add_argument("--ablation-base", default="MMoE", help="the base of the ablation (default MMoE)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small and fast: {QUICK['epochs']} epoch on at most {QUICK['max_train_rows']} training rows, 1 seed, 2 workers")
    parser.add_argument("--epochs", type=int, help=f"max epochs (default {TrainConfig.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"default {TrainConfig.batch_size}")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--embedding-lr", type=float, default=TrainConfig.embedding_lr)
    parser.add_argument("--sample-fraction", type=float, help="train on this fraction of the training rows")
    parser.add_argument("--max-train-rows", type=int, help="sets the sample fraction so about this many training rows are used")
    parser.add_argument("--spec", help="feature spec JSON (default: the built-in FeatureSpec)")
    parser.add_argument("--history-len", type=int, help="override the feature spec's history length")
    parser.add_argument("--jobs", type=int, help="parallel training processes (default 1, --quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--no-progress", action="store_true")


def plan_from_args(args: argparse.Namespace):
    from model.data import BatchStream, available_days, open_dataset, time_split
    from model.experiment import ExperimentPlan, canonical_base

    quick = bool(args.quick)
    spec = FeatureSpec.load(args.spec) if args.spec else FeatureSpec()
    if args.history_len:
        spec = FeatureSpec.from_json(json.dumps({**json.loads(spec.to_json()), "history_len": args.history_len}))
    sample_fraction = args.sample_fraction or 1.0
    max_rows = args.max_train_rows or (QUICK["max_train_rows"] if quick else None)
    if max_rows:
        split = time_split(available_days(open_dataset(args.data)))
        train_rows = BatchStream(args.data, spec, split.train_days, 1).count_rows()
        sample_fraction = min(sample_fraction, max_rows / max(train_rows, 1))
    epochs = args.epochs or (QUICK["epochs"] if quick else TrainConfig.epochs)
    train = TrainConfig(
        epochs=epochs, validate=epochs > 1,
        batch_size=args.batch_size or (QUICK["batch_size"] if quick else TrainConfig.batch_size),
        lr=args.lr, embedding_lr=args.embedding_lr, threads=args.threads, sample_fraction=sample_fraction,
        progress=not args.no_progress,
    )
    return ExperimentPlan(
        data_dir=Path(args.data), out_dir=Path(args.out),
        bases=[canonical_base(b) for b in (args.base or list(BASE_NAMES))],
        seeds=args.seeds or (1 if quick else 3), ablations=args.ablations,
        ablation_base=canonical_base(args.ablation_base), train=train, spec=spec,
        jobs=args.jobs or (QUICK["jobs"] if quick else 1), quick=quick,
    )


def run(args: argparse.Namespace, config: Any) -> int:
    from model.experiment import run_experiment

    plan = plan_from_args(args)
    results = run_experiment(plan)
    print((plan.out_dir / "results.md").read_text())
    print(f"wrote {plan.out_dir / 'results.json'}, results.md, results.png "
          f"({results['meta']['wall_seconds']:.0f}s)")
    return 0
