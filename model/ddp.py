"""Data-parallel training entry point for torchrun (DDP, gloo backend, CPU).

    python -m torch.distributed.run --nproc_per_node 2 -m model.ddp \
        --data DIR --out OUT --model MMoE+USR --batch-size 512

``--batch-size`` is per process: two processes at 512 see what one process at 1024 sees
(see model.data.BatchStream), so they reach the same metrics. Rank 0 validates, writes
checkpoints and the test metrics.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch.distributed as dist


def main(argv: list[str] | None = None) -> int:
    from model.train_cli import add_training_arguments, configs_from_args

    parser = argparse.ArgumentParser(prog="python -m model.ddp", description=__doc__.splitlines()[0])
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from model.runner import train_variant

        model_config, spec, train_config = configs_from_args(args)
        if rank != 0:
            train_config.progress = False
        summary = train_variant(args.data, args.out, model_config, spec, train_config, rank=rank, world=world,
                                resume=args.resume, warm_start=args.warm_start,
                                export_dir=args.export if rank == 0 else None)
        if rank == 0:
            print(json.dumps({k: summary.get(k) for k in ("model", "world_size", "samples_per_second", "test")}, default=float))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
