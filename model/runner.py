"""Train one model variant on an impression table and evaluate it on the test day.

Shared by ``usr train``, the DDP entry point (``model.ddp``) and ``usr experiment``.
Writes ``<out>/metrics.json`` (rank 0) with test metrics, oracle metrics, timings and the
split, and returns the same dict.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from features.spec import FeatureSpec
from model.configs import ModelConfig
from model.data import BatchStream, TimeSplit, available_days, open_dataset, time_split
from model.train import TrainConfig, Trainer, evaluate_model, make_model


def resolve_split(data_dir: str | Path, split: TimeSplit | None = None) -> TimeSplit:
    return split or time_split(available_days(open_dataset(data_dir)))


def train_variant(data_dir: str | Path, out_dir: str | Path, model_config: ModelConfig, spec: FeatureSpec,
                  train_config: TrainConfig, *, rank: int = 0, world: int = 1, resume: bool = False,
                  warm_start: str | Path | None = None, split: TimeSplit | None = None,
                  export_dir: str | Path | None = None) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = resolve_split(data_dir, split)
    started = time.perf_counter()
    model = make_model(model_config, spec, train_config.seed)
    trainer = Trainer(model, train_config, out, rank=rank, world=world)
    train = BatchStream(data_dir, spec, split.train_days, train_config.batch_size, shuffle=True,
                        seed=train_config.seed, shuffle_buffer=train_config.shuffle_buffer, rank=rank, world=world,
                        drop_last=True, sample_fraction=train_config.sample_fraction,
                        global_labels=model_config.global_labels, prefetch=train_config.prefetch)
    valid = None
    if rank == 0 and split.valid_days and train_config.validate:
        valid = BatchStream(data_dir, spec, split.valid_days, train_config.eval_batch_size,
                            global_labels=model_config.global_labels, prefetch=train_config.prefetch)
    fit = trainer.fit(train, valid, resume=resume, warm_start=warm_start)
    summary: dict[str, Any] = {
        "model": model_config.name,
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "split": split.to_dict(),
        "world_size": world,
        "best_epoch": fit.best_epoch,
        "best_valid_mean_auc": fit.best_metric,
        "stopped_early": fit.stopped_early,
        "epochs_run": len([h for h in fit.history if "epoch" in h]),
        "train_seconds": fit.train_seconds,
        "train_samples": fit.train_samples,
        "samples_per_second": fit.samples_per_second,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if rank == 0:
        test = BatchStream(data_dir, spec, split.test_days, train_config.eval_batch_size,
                           global_labels=model_config.global_labels, prefetch=train_config.prefetch)
        metrics, oracle = evaluate_model(model, test)
        summary["test"] = metrics
        summary["oracle"] = oracle
        summary["wall_seconds"] = time.perf_counter() - started
        spec.save(out / "feature_spec.json")
        (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float))
        if export_dir is not None:
            from model.export import export_model

            export_model(model, export_dir)
    return summary
