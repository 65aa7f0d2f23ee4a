"""``usr train``: train one model variant on an impression table (one process, or DDP
over ``--nproc`` processes through torchrun), evaluate it on the last day, optionally
export it."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from features.spec import FeatureSpec
from model.configs import NAMED_CONFIGS, ModelConfig, get_config, load_blocks
from model.train import TrainConfig


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="directory with impressions.parquet (or impressions/*.parquet)")
    parser.add_argument("--out", required=True, help="output directory (checkpoints, metrics.json)")
    parser.add_argument("--model", default="MMoE+USR", help="named config block (e.g. MMoE, MMoE+USR, MMoE+USR-FG)")
    parser.add_argument("--model-blocks", help="YAML file with more named config blocks")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model config field (YAML value), e.g. --set ie_condition_user=true")
    parser.add_argument("--spec", help="feature spec JSON (default: the built-in FeatureSpec)")
    parser.add_argument("--history-len", type=int, help="override the spec's history length")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="per process")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--embedding-lr", type=float, default=TrainConfig.embedding_lr)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--sample-fraction", type=float, default=1.0, help="train on this fraction of the training rows")
    parser.add_argument("--max-steps", type=int, help="cap the steps per epoch")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    parser.add_argument("--warm-start", help="initialise from an earlier checkpoint (incremental training)")
    parser.add_argument("--export", help="write the TorchScript model + feature spec here")
    parser.add_argument("--no-progress", action="store_true")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--nproc", type=int, default=1, help="DDP processes (torchrun, gloo)")


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, FeatureSpec, TrainConfig]:
    blocks = dict(NAMED_CONFIGS)
    if args.model_blocks:
        blocks.update(load_blocks(args.model_blocks))
    if args.model not in blocks:
        raise KeyError(f"unknown model '{args.model}' (known: {', '.join(blocks)})")
    model_config = get_config(blocks[args.model], **_overrides(args.set))
    spec = FeatureSpec.load(args.spec) if args.spec else FeatureSpec()
    if args.history_len:
        spec = FeatureSpec.from_json(json.dumps({**json.loads(spec.to_json()), "history_len": args.history_len}))
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, embedding_lr=args.embedding_lr,
                               patience=args.patience, seed=args.seed, threads=args.threads,
                               sample_fraction=args.sample_fraction, max_steps_per_epoch=args.max_steps,
                               progress=not args.no_progress)
    return model_config, spec, train_config


def training_argv(args: argparse.Namespace) -> list[str]:
    """The training arguments of ``args`` as a command line (for the DDP workers)."""
    probe = argparse.ArgumentParser(add_help=False)
    add_training_arguments(probe)
    argv: list[str] = []
    for action in probe._actions:
        value = getattr(args, action.dest, None)
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value or []:
                argv += [flag, str(item)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def run(args: argparse.Namespace, config: Any) -> int:
    if args.nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "model.ddp", *training_argv(args)]
        return subprocess.call(cmd, cwd=str(Path(__file__).resolve().parent.parent))
    from model.runner import train_variant

    model_config, spec, train_config = configs_from_args(args)
    summary = train_variant(args.data, args.out, model_config, spec, train_config, resume=args.resume,
                            warm_start=args.warm_start, export_dir=args.export)
    print(json.dumps({"model": summary["model"], "samples_per_second": summary["samples_per_second"],
                      "test": {k: v for k, v in summary["test"].items() if k.endswith("_auc")},
                      "oracle": summary["oracle"]}, indent=2, default=float))
    return 0
