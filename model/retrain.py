"""Incremental retraining with a validation gate and safe rollout.

One run:
  1. find the serving model (the Triton repository's serving version) and its record:
     its data watermark (newest ``ts`` it was trained on) and checkpoint;
  2. take the labelled rows that arrived since the watermark plus a replay window of
     older rows; hold out the newest ``holdout_fraction`` of the new rows;
  3. train a candidate warm-started from the serving weights;
  4. evaluate candidate and serving model on the held-out slice (mean AUC of the four
     tasks); promote only if the candidate is not worse beyond ``tolerance``;
  5. promoting publishes a new version into the Triton repository and pins it; the
     servers switch in place (usr/stack/triton_host.py) and the gateway follows the
     version each answer reports. A rejected or failed run leaves serving untouched.
Every run writes a registry record; the newest ``keep_versions`` promoted versions
are kept in the repository and the registry.
"""
from __future__ import annotations

import logging
import math
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from features.spec import FeatureSpec
from model.configs import ModelConfig, get_config
from model.data import BatchStream, TimeSplit, impression_files
from model.registry import Registry, VersionRecord
from model.repository import serving_version, versions
from model.triton_export import publish, set_serving_version
from usr.config import Config
from usr.data.tables import IMPRESSION_SCHEMA

LOG = logging.getLogger("retrain")


def registry_dir(config: Config) -> Path:
    """One registry per served model name (A/B arms retrain side by side)."""
    return (config.retrain.registry_dir or (config.run.dir / "registry")) / config.triton.model_name


def labels_dir(config: Config) -> Path:
    if config.retrain.data_dir is not None:
        return config.retrain.data_dir
    from features.store import offline_dir

    return offline_dir(config)  # the stream jobs write <offline>/impressions/*.parquet


def open_rows(data_dir: Path) -> ds.Dataset:
    """The labelled rows: an impression table (file or parts) or a hive-partitioned directory."""
    try:
        return ds.dataset([str(p) for p in impression_files(data_dir)], format="parquet")
    except FileNotFoundError:
        if not Path(data_dir).exists():
            raise FileNotFoundError(f"no labelled rows at {data_dir}") from None
        return ds.dataset(str(data_dir), format="parquet", partitioning="hive")


@dataclass
class Window:
    replay_from_ts: int | None
    watermark_ts: int | None       # the serving model's; rows newer than this are new
    holdout_from_ts: int
    newest_ts: int
    train_rows: int
    holdout_rows: int
    new_rows: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def snapshot(config: Config, rows: ds.Dataset, watermark_ts: int | None, out: Path) -> Window | None:
    """Write the run's training rows (day 0) and holdout rows (day 1) under ``out``;
    None when there are too few new rows."""
    rc = config.retrain
    columns = list(IMPRESSION_SCHEMA.names)
    new_filter = pc.field("ts") > watermark_ts if watermark_ts is not None else None
    new_ts = rows.to_table(columns=["ts"], filter=new_filter).column("ts").to_numpy()
    if len(new_ts) < rc.min_new_rows:
        return None
    holdout_from = int(np.quantile(new_ts, 1.0 - rc.holdout_fraction))
    replay_from = (watermark_ts - rc.replay_window_s * 1000) if watermark_ts is not None else None
    train_filter = pc.field("ts") < holdout_from
    if replay_from is not None:
        train_filter = train_filter & (pc.field("ts") > replay_from)
    train = rows.to_table(columns=columns, filter=train_filter)
    holdout = rows.to_table(columns=columns, filter=pc.field("ts") >= holdout_from)
    if train.num_rows == 0 or holdout.num_rows == 0:
        return None
    parts = out / "impressions"
    parts.mkdir(parents=True, exist_ok=True)
    for day, table in ((0, train), (1, holdout)):
        table = table.set_column(table.schema.get_field_index("day"), "day",
                                 pa.array(np.full(table.num_rows, day, dtype=np.int32)))
        pq.write_table(table.sort_by("ts"), parts / f"part-{day}.parquet")
    return Window(replay_from, watermark_ts, holdout_from, int(new_ts.max()), train.num_rows, holdout.num_rows,
                  len(new_ts))


def _mean_auc(metrics: dict[str, float]) -> float:
    value = metrics.get("mean_auc", float("nan"))
    return float(value) if value is not None else float("nan")


def evaluate_checkpoint(checkpoint: Path, data_dir: Path, batch_size: int) -> dict[str, float]:
    from model.export import load_checkpoint_model
    from model.train import evaluate_model

    model = load_checkpoint_model(checkpoint)
    stream = BatchStream(data_dir, model.spec, [1], batch_size, global_labels=model.config.global_labels)
    metrics, _ = evaluate_model(model, stream)
    return metrics


def gate(candidate: float, serving: float | None, tolerance: float) -> tuple[bool, str]:
    if math.isnan(candidate):
        return False, "candidate has no finite AUC on the holdout"
    if serving is None or math.isnan(serving):
        return True, "no serving model to compare with"
    if candidate >= serving - tolerance:
        return True, f"candidate mean AUC {candidate:.4f} >= serving {serving:.4f} - tolerance {tolerance}"
    return False, f"candidate mean AUC {candidate:.4f} < serving {serving:.4f} - tolerance {tolerance}"


def retrain_once(config: Config, *, progress: bool = True) -> VersionRecord | None:
    """One retraining run; returns its record (None: skipped, too few new rows)."""
    from model.export import load_checkpoint_model, script_model
    from model.runner import train_variant
    from model.train import TrainConfig

    rc = config.retrain
    repo, name = config.triton.model_repository, config.triton.model_name
    registry = Registry(registry_dir(config))
    serving = serving_version(repo, name)
    serving_record = registry.get(serving) if serving is not None else None
    if serving is not None and serving_record is None:
        LOG.warning("serving version %s has no registry record: training from scratch", serving)
    watermark = serving_record.watermark_ts if serving_record else None
    parent_ckpt = registry.checkpoint_path(serving) if serving_record else None
    if parent_ckpt is not None and not parent_ckpt.exists():
        parent_ckpt = None

    version = registry.next_version(floor=max(versions(repo, name), default=0))
    work = registry.root / "runs" / str(version)
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    try:
        window = snapshot(config, open_rows(labels_dir(config)), watermark, work / "data")
        if window is None:
            LOG.info("retrain skipped: fewer than %d new rows since watermark %s", rc.min_new_rows, watermark)
            registry.log_event(kind="skipped", serving=serving, watermark_ts=watermark)
            shutil.rmtree(work, ignore_errors=True)
            return None
        model_config: ModelConfig = (ModelConfig.from_dict(serving_record_config(parent_ckpt))
                                     if parent_ckpt else get_config(rc.model))
        spec = FeatureSpec.from_json(serving_record_spec(parent_ckpt)) if parent_ckpt else FeatureSpec()
        train_cfg = TrainConfig(epochs=rc.epochs, batch_size=rc.batch_size, lr=rc.lr, threads=rc.threads,
                                seed=rc.seed, validate=False, progress=progress)
        summary = train_variant(work / "data", work / "train", model_config, spec, train_cfg,
                                warm_start=parent_ckpt, split=TimeSplit((0,), (), (1,)))
        candidate_metrics = summary["test"]
        serving_metrics = (evaluate_checkpoint(parent_ckpt, work / "data", rc.batch_size)
                           if parent_ckpt else None)
        ok, reason = gate(_mean_auc(candidate_metrics),
                          _mean_auc(serving_metrics) if serving_metrics else None, rc.tolerance)
        record = VersionRecord(
            version=version, parent=serving, model=model_config.name,
            decision="promoted" if ok else "rejected", reason=reason,
            data_window={**window.as_dict(), "watermark_ts": window.newest_ts if ok else watermark},
            metrics={"candidate": candidate_metrics, "serving": serving_metrics, "oracle": summary.get("oracle")},
            train_seconds=round(time.perf_counter() - started, 2))
        if ok:
            checkpoint = work / "train" / "checkpoints" / "best.pt"
            registry.save_checkpoint(version, checkpoint)
            model = load_checkpoint_model(checkpoint)
            publish(script_model(model), model.spec, repo, name, version=version,
                    model_config=model.config.to_dict(), max_batch_size=config.triton.max_batch_size)
            set_serving_version(repo, name, version)
            registry.log_event(kind="promoted", version=version, parent=serving)
            prune_repository(config, registry, keep=rc.keep_versions)
        else:
            registry.log_event(kind="rejected", version=version, serving=serving, reason=reason)
        registry.write(record)
        LOG.info("retrain %d: %s (%s)", version, record.decision, reason)
        return record
    except Exception as exc:  # noqa: BLE001 - a failed run leaves serving untouched and says why
        record = VersionRecord(version=version, parent=serving, model=rc.model, decision="failed",
                               reason=f"{type(exc).__name__}: {exc}",
                               metrics={"traceback": traceback.format_exc(limit=5)},
                               train_seconds=round(time.perf_counter() - started, 2))
        registry.write(record)
        registry.log_event(kind="failed", version=version, serving=serving, reason=record.reason)
        LOG.error("retrain %d failed: %s", version, record.reason)
        return record
    finally:
        shutil.rmtree(work / "data", ignore_errors=True)


def _checkpoint_meta(checkpoint: Path) -> dict[str, Any]:
    import torch

    return torch.load(checkpoint, map_location="cpu", weights_only=False)


def serving_record_config(checkpoint: Path) -> dict[str, Any]:
    return _checkpoint_meta(checkpoint)["model_config"]


def serving_record_spec(checkpoint: Path) -> str:
    return _checkpoint_meta(checkpoint)["spec"]


def prune_repository(config: Config, registry: Registry, keep: int) -> list[int]:
    """Keep the newest ``keep`` versions in the Triton repository and the registry."""
    repo, name = config.triton.model_repository, config.triton.model_name
    serving = serving_version(repo, name)
    present = versions(repo, name)
    drop = [v for v in present[:-keep] if v != serving] if len(present) > keep else []
    for v in drop:
        shutil.rmtree(Path(repo) / name / str(v), ignore_errors=True)
    registry.prune(keep, protect={serving} if serving else set())
    return drop


def rollback(config: Config) -> tuple[int, int]:
    """Serve the serving version's parent again; returns (from, to)."""
    repo, name = config.triton.model_repository, config.triton.model_name
    registry = Registry(registry_dir(config))
    current = serving_version(repo, name)
    if current is None:
        raise RuntimeError("nothing is serving: no version to roll back from")
    record = registry.get(current)
    target = record.parent if record else None
    available = versions(repo, name)
    if target is None or target not in available:
        older = [v for v in available if v < current]
        if not older:
            raise RuntimeError(f"version {current} has no earlier version in {repo / name} to return to")
        target = older[-1]
    set_serving_version(repo, name, target)
    registry.log_event(kind="rollback", version=target, serving=current)
    return current, target
