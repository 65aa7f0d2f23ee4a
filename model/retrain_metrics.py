"""Prometheus metrics of retraining: served over HTTP by ``usr retrain --every`` and
written as a textfile (``<registry>/retrain.prom``) after every run."""
from __future__ import annotations

import math
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from model.registry import VersionRecord

REGISTRY = CollectorRegistry()
RUNS = Counter("usr_retrain_runs_total", "Retraining runs by decision", ["decision"], registry=REGISTRY)
SERVING = Gauge("usr_retrain_serving_version", "Version serving after the last run", registry=REGISTRY)
LAST_RUN = Gauge("usr_retrain_last_run_timestamp_seconds", "When the last run ended", registry=REGISTRY)
AUC = Gauge("usr_retrain_holdout_mean_auc", "Mean AUC on the last run's holdout", ["model"], registry=REGISTRY)
SECONDS = Gauge("usr_retrain_last_run_seconds", "Duration of the last run", registry=REGISTRY)


def observe(record: VersionRecord | None, serving: int | None, textfile: Path, ended_at: float) -> None:
    RUNS.labels(decision=record.decision if record else "skipped").inc()
    if serving is not None:
        SERVING.set(serving)
    LAST_RUN.set(ended_at)
    if record is not None:
        SECONDS.set(record.train_seconds)
        for who in ("candidate", "serving"):
            m = (record.metrics or {}).get(who) or {}
            value = m.get("mean_auc") if isinstance(m, dict) else None
            if value is not None and not math.isnan(float(value)):
                AUC.labels(model=who).set(float(value))
    write_to_textfile(str(textfile), REGISTRY)
