"""The trainer: mini-batches streamed from Parquet, validation with early stopping,
checkpoints, resume, warm start, progress bars, deterministic by seed; optionally one of
several DDP processes (see :mod:`model.ddp`).

Checkpoints (written by rank 0 under ``<out>/checkpoints``):
  last.pt  everything needed to resume: weights, optimiser states, epoch, early-stopping
           state, history, RNG state, model config, train config, feature spec
  best.pt  the weights of the best validation epoch (+ configs and spec): what is exported
           and what a later incremental training warm-starts from.
Resume continues at the epoch after the last completed one; since shuffling is seeded by
(seed, epoch), a resumed run matches an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from features.spec import FeatureSpec
from model.configs import ModelConfig
from model.data import BatchStream
from model.evaluate import metrics_from_predictions, oracle_metrics, predict
from model.losses import ranking_loss
from model.usr_model import RankingModel


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 1024
    eval_batch_size: int = 8192
    lr: float = 2e-3            # dense parameters (Adam)
    embedding_lr: float = 5e-3  # embedding table (SparseAdam when sparse, else part of Adam)
    weight_decay: float = 0.0
    patience: int = 1           # epochs without improvement of the validation metric before stopping
    min_delta: float = 1e-4
    seed: int = 0
    threads: int = 1
    shuffle_buffer: int = 100_000
    sample_fraction: float = 1.0
    max_steps_per_epoch: Optional[int] = None
    progress: bool = True
    prefetch: int = 2
    validate: bool = True       # False: no validation pass (e.g. one epoch: nothing to stop early)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = float("-inf")
    train_seconds: float = 0.0
    train_samples: int = 0
    stopped_early: bool = False

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else float("nan")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def make_model(model_config: ModelConfig, spec: FeatureSpec, seed: int) -> RankingModel:
    """Build the model with its initial weights determined by ``seed``."""
    seed_everything(seed)
    return RankingModel(model_config, spec)


def load_weights(model: torch.nn.Module, checkpoint: str | Path) -> tuple[list[str], list[str]]:
    """Warm start: copy every tensor of the checkpoint whose name and shape match.

    Returns (loaded names, skipped names). Hashed embedding tables keep their rows for the
    same bucket counts, so an incremental training keeps what it learned about every id."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = state["model"] if "model" in state else state
    own = model.state_dict()
    loaded, skipped = [], []
    for name, tensor in weights.items():
        if name in own and own[name].shape == tensor.shape:
            own[name] = tensor
            loaded.append(name)
        else:
            skipped.append(name)
    model.load_state_dict(own)
    return loaded, skipped


class Trainer:
    def __init__(self, model: RankingModel, train_config: TrainConfig, out_dir: str | Path, *,
                 rank: int = 0, world: int = 1):
        self.model = model
        self.model_config: ModelConfig = model.config
        self.spec: FeatureSpec = model.spec
        self.cfg = train_config
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.rank = rank
        self.world = world
        torch.set_num_threads(max(1, train_config.threads))
        self.module: torch.nn.Module = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.module = DistributedDataParallel(model)
        sparse = [p for n, p in model.named_parameters() if n == "embedding.table.weight" and model.config.sparse_embeddings]
        dense = [p for n, p in model.named_parameters() if not (n == "embedding.table.weight" and model.config.sparse_embeddings)]
        self.optimizers: list[torch.optim.Optimizer] = []
        if sparse:
            self.optimizers.append(torch.optim.SparseAdam(sparse, lr=train_config.embedding_lr))
            self.optimizers.append(torch.optim.Adam(dense, lr=train_config.lr, weight_decay=train_config.weight_decay))
        else:
            table = [model.embedding.table.weight]
            rest = [p for p in dense if p is not model.embedding.table.weight]
            self.optimizers.append(torch.optim.Adam([{"params": table, "lr": train_config.embedding_lr},
                                                     {"params": rest}], lr=train_config.lr,
                                                    weight_decay=train_config.weight_decay))

    # ---- checkpoints ------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"model_config": self.model_config.to_dict(), "train_config": self.cfg.to_dict(),
                "spec": self.spec.to_json()}

    def save_checkpoint(self, name: str, epoch: int, result: FitResult, bad_epochs: int) -> Path:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / name
        state = {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "epoch": epoch,
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric,
            "bad_epochs": bad_epochs,
            "history": result.history,
            "train_seconds": result.train_seconds,
            "train_samples": result.train_samples,
            "torch_rng": torch.get_rng_state(),
            **self._meta(),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    def _save_best(self, epoch: int, metric: float) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt_dir / "best.tmp"
        torch.save({"model": self.model.state_dict(), "epoch": epoch, "metric": metric, **self._meta()}, tmp)
        tmp.replace(self.ckpt_dir / "best.pt")

    def _resume(self, result: FitResult) -> tuple[int, int]:
        state = torch.load(self.ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        torch.set_rng_state(state["torch_rng"])
        result.history = state["history"]
        result.best_epoch = state["best_epoch"]
        result.best_metric = state["best_metric"]
        result.train_seconds = state["train_seconds"]
        result.train_samples = state["train_samples"]
        return state["epoch"] + 1, state["bad_epochs"]

    # ---- training ---------------------------------------------------------------------
    def _train_epoch(self, stream: BatchStream, epoch: int) -> tuple[float, int, float]:
        self.module.train()
        total = stream.estimated_steps()
        if self.cfg.max_steps_per_epoch:
            total = min(total, self.cfg.max_steps_per_epoch)
        bar = tqdm(total=total, desc=f"{self.model_config.name} epoch {epoch}", unit="batch",
                   disable=not (self.cfg.progress and self.rank == 0), leave=False, mininterval=2.0)
        losses: list[float] = []
        samples = 0
        start = time.perf_counter()
        for step, (inputs, labels) in enumerate(stream.epoch(epoch)):
            if self.cfg.max_steps_per_epoch and step >= self.cfg.max_steps_per_epoch:
                break
            outputs = self.module(**inputs)
            loss, parts = ranking_loss(outputs, labels, self.model_config)
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in self.optimizers:
                opt.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"{self.model_config.name}: loss became {loss_value} at epoch {epoch} step {step}")
            losses.append(loss_value)
            samples += inputs["scenario"].size(0)
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        bar.close()
        seconds = time.perf_counter() - start
        return float(np.mean(losses)) if losses else float("nan"), samples * self.world, seconds

    def validate(self, stream: BatchStream) -> dict[str, float]:
        pred = predict(self.model, stream)
        return metrics_from_predictions(pred, with_gauc=False)

    def fit(self, train: BatchStream, valid: BatchStream | None, *, resume: bool = False,
            warm_start: str | Path | None = None) -> FitResult:
        result = FitResult()
        start_epoch, bad_epochs = 0, 0
        if resume and (self.ckpt_dir / "last.pt").exists():
            start_epoch, bad_epochs = self._resume(result)
        elif warm_start is not None:
            loaded, skipped = load_weights(self.model, warm_start)
            result.history.append({"warm_start": str(warm_start), "loaded": len(loaded), "skipped": skipped})
        if self.world > 1:  # every rank starts from rank 0's weights
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)

        for epoch in range(start_epoch, self.cfg.epochs):
            train_loss, samples, seconds = self._train_epoch(train, epoch)
            result.train_seconds += seconds
            result.train_samples += samples
            record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "samples": samples,
                                      "seconds": round(seconds, 3), "samples_per_second": samples / max(seconds, 1e-9)}
            stop = False
            if self.rank == 0:
                if valid is not None:
                    metrics = self.validate(valid)
                    metric = metrics["mean_auc"]
                    record["valid"] = metrics
                    if metric > result.best_metric + self.cfg.min_delta:
                        result.best_metric, result.best_epoch, bad_epochs = metric, epoch, 0
                        self._save_best(epoch, metric)
                    else:
                        bad_epochs += 1
                        stop = bad_epochs >= self.cfg.patience
                else:  # no validation: the last epoch is the best
                    result.best_epoch = epoch
                    self._save_best(epoch, float("nan"))
                result.history.append(record)
                self.save_checkpoint("last.pt", epoch, result, bad_epochs)
                if self.cfg.progress:
                    valid_txt = f" valid mean AUC {record['valid']['mean_auc']:.4f}" if "valid" in record else ""
                    print(f"[{self.model_config.name}] epoch {epoch}: loss {train_loss:.4f}, "
                          f"{record['samples_per_second']:.0f} samples/s{valid_txt}", flush=True)
            if self.world > 1:
                box = [stop]
                dist.broadcast_object_list(box, src=0)
                stop = bool(box[0])
            if stop:
                result.stopped_early = True
                break

        # finish on the best weights
        if self.world > 1:
            dist.barrier()
        best = self.ckpt_dir / "best.pt"
        if best.exists():
            state = torch.load(best, map_location="cpu", weights_only=False)
            self.model.load_state_dict(state["model"])
        if self.rank == 0:
            (self.out_dir / "history.json").write_text(json.dumps(result.history, indent=2, default=float))
        return result


def evaluate_model(model: torch.nn.Module, stream: BatchStream) -> tuple[dict[str, float], dict[str, float]]:
    """(model metrics, oracle metrics) on a stream."""
    pred = predict(model, stream)
    return metrics_from_predictions(pred), oracle_metrics(pred)
