"""The paper's offline experiment: every chosen base model with and without USR, over
several seeds, plus (optionally) the ablation of USR on one base.

Each (variant, seed) trains with :func:`model.runner.train_variant` into
``OUT/runs/<variant>/seed<k>/`` and is skipped when its ``metrics.json`` already exists, so
an interrupted experiment continues where it stopped. Runs go to ``jobs`` worker
processes (spawned, ``threads`` torch threads each). The aggregate goes to
``OUT/results.json``, ``OUT/results.md`` and ``OUT/results.png`` (+ ``results_ablation.png``).
"""
from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from features.spec import FeatureSpec
from model.configs import ABLATIONS, BASE_NAMES, get_config
from model.evaluate import TASKS, rela_impr
from model.train import TrainConfig

AUC_KEYS = tuple(f"{t}_auc" for t in TASKS)
TASK_TITLES = {"search_ctr": "S-CTR", "search_ctcvr": "S-CTCVR", "rec_ctr": "R-CTR", "rec_ctcvr": "R-CTCVR"}
PER_SEED_KEYS = (AUC_KEYS + tuple(f"{t}_gauc" for t in TASKS) + tuple(f"{t}_logloss" for t in TASKS)
                 + ("mean_auc",))


def canonical_base(name: str) -> str:
    """'mmoe', 'MMoE', 'shared_bottom', 'SharedBottom' -> the display name ('MMoE')."""
    for display, key in BASE_NAMES.items():
        if name.lower() in (display.lower(), key):
            return display
    raise ValueError(f"unknown base '{name}' (one of {', '.join(BASE_NAMES)})")


def safe_name(variant: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", variant.replace("+", "_plus_"))


@dataclass
class ExperimentPlan:
    data_dir: Path
    out_dir: Path
    bases: list[str] = field(default_factory=lambda: list(BASE_NAMES))
    seeds: int = 3
    ablations: bool = False
    ablation_base: str = "MMoE"
    train: TrainConfig = field(default_factory=TrainConfig)
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    jobs: int = 1
    quick: bool = False

    def variants(self) -> list[tuple[str, str, str | None]]:
        """(variant name, base display name, ablated component or None)."""
        out: list[tuple[str, str, str | None]] = []
        for base in self.bases:
            out.append((base, base, None))
            out.append((f"{base}+USR", base, None))
        if self.ablations:
            for short in ABLATIONS:
                out.append((f"{self.ablation_base}+USR-{short}", self.ablation_base, short))
        return out


def _run_one(data_dir: str, run_dir: str, variant: str, spec_json: str, train_config: dict[str, Any],
             split: dict[str, list[int]]) -> dict[str, Any]:
    """One training run in a worker process."""
    import torch

    from model.data import TimeSplit
    from model.runner import train_variant

    torch.set_num_threads(max(1, train_config["threads"]))
    spec = FeatureSpec.from_json(spec_json)
    cfg = TrainConfig(**train_config)
    time_split = TimeSplit(tuple(split["train"]), tuple(split["valid"]), tuple(split["test"]))
    return train_variant(data_dir, run_dir, get_config(variant), spec, cfg, split=time_split)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def run_experiment(plan: ExperimentPlan, log: Any = print) -> dict[str, Any]:
    from model.data import available_days, open_dataset, time_split

    started = time.perf_counter()
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    dataset = open_dataset(plan.data_dir)
    split = time_split(available_days(dataset))
    total_rows = int(dataset.count_rows())
    jobs: list[tuple[str, int, Path]] = []
    for seed in range(plan.seeds):  # seed-major: an interrupted run leaves whole seeds done
        for variant, _, _ in plan.variants():
            jobs.append((variant, seed, plan.out_dir / "runs" / safe_name(variant) / f"seed{seed}"))

    summaries: dict[tuple[str, int], dict[str, Any]] = {}
    todo = []
    for variant, seed, run_dir in jobs:
        done = run_dir / "metrics.json"
        if done.exists():
            summaries[(variant, seed)] = json.loads(done.read_text())
        else:
            todo.append((variant, seed, run_dir))
    log(f"experiment: {len(jobs)} runs ({len(jobs) - len(todo)} already done), split {split.to_dict()}, "
        f"{total_rows} rows, {plan.jobs} worker(s)")

    def submit_args(variant: str, seed: int, run_dir: Path) -> tuple:
        cfg = {**plan.train.to_dict(), "seed": seed, "progress": plan.jobs == 1 and plan.train.progress}
        return (str(plan.data_dir), str(run_dir), variant, plan.spec.to_json(), cfg, split.to_dict())

    if plan.jobs <= 1:
        for i, (variant, seed, run_dir) in enumerate(todo):
            summaries[(variant, seed)] = _run_one(*submit_args(variant, seed, run_dir))
            _log_run(log, i + 1, len(todo), variant, seed, summaries[(variant, seed)])
    else:
        with ProcessPoolExecutor(max_workers=plan.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, *submit_args(v, s, d)): (v, s) for v, s, d in todo}
            for i, fut in enumerate(as_completed(futures)):
                variant, seed = futures[fut]
                summaries[(variant, seed)] = fut.result()
                _log_run(log, i + 1, len(todo), variant, seed, summaries[(variant, seed)])

    results = aggregate(plan, summaries, split.to_dict(), total_rows)
    results["meta"]["wall_seconds"] = time.perf_counter() - started
    write_outputs(results, plan.out_dir)
    return results


def _log_run(log: Any, i: int, n: int, variant: str, seed: int, summary: dict[str, Any]) -> None:
    aucs = " ".join(f"{TASK_TITLES[t]} {summary['test'][f'{t}_auc']:.4f}" for t in TASKS)
    log(f"[{i}/{n}] {variant} seed {seed}: {aucs} | {summary['samples_per_second']:.0f} samples/s, "
        f"{summary['train_seconds']:.0f}s training")


def aggregate(plan: ExperimentPlan, summaries: dict[tuple[str, int], dict[str, Any]],
              split: dict[str, list[int]], total_rows: int) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    oracle: dict[str, float] = {}
    for variant, base, ablated in plan.variants():
        per_seed: dict[str, dict[str, float]] = {}
        for seed in range(plan.seeds):
            s = summaries[(variant, seed)]
            row = {k: s["test"][k] for k in PER_SEED_KEYS}
            row.update({"train_seconds": s["train_seconds"], "samples_per_second": s["samples_per_second"],
                        "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"]})
            per_seed[str(seed)] = row
            oracle = oracle or s.get("oracle", {})
        keys = list(next(iter(per_seed.values())).keys())
        stats = {k: _mean_std([r[k] for r in per_seed.values()]) for k in keys}
        variants[variant] = {
            "base": base,
            "usr": variant != base,
            "ablated": ablated,
            "parameters": summaries[(variant, 0)]["parameters"],
            "per_seed": per_seed,
            "mean": {k: v[0] for k, v in stats.items()},
            "std": {k: v[1] for k, v in stats.items()},
        }
    relaimpr: dict[str, dict[str, float]] = {}
    improved = 0
    cells = 0
    for base in plan.bases:
        b, u = variants[base]["mean"], variants[f"{base}+USR"]["mean"]
        relaimpr[base] = {k: rela_impr(u[k], b[k]) for k in AUC_KEYS}
        for k in AUC_KEYS:
            cells += 1
            improved += int(u[k] > b[k])
    return {
        "meta": {
            "data_dir": str(plan.data_dir), "rows": total_rows, "split": split, "seeds": plan.seeds,
            "bases": plan.bases, "quick": plan.quick, "train_config": plan.train.to_dict(),
            "feature_spec": json.loads(plan.spec.to_json()), "jobs": plan.jobs,
        },
        "oracle": oracle,
        "variants": variants,
        "relaimpr": relaimpr,
        "usr_better_cells": {"improved": improved, "cells": cells},
    }


# ---- writing ------------------------------------------------------------------------------
def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def results_markdown(results: dict[str, Any]) -> str:
    meta, variants = results["meta"], results["variants"]
    lines = [f"# USR offline experiment", "",
             f"Data: `{meta['data_dir']}` ({meta['rows']} impressions), train days {meta['split']['train']}, "
             f"validation {meta['split']['valid']}, test {meta['split']['test']}; {meta['seeds']} seed(s); "
             f"mean ± sample std over seeds. "
             + (f"Epochs ≤ {meta['train_config']['epochs']} (early stopping on validation mean AUC), "
                if meta['train_config'].get('validate', True) else f"{meta['train_config']['epochs']} epoch(s), no validation pass, ")
             + f"batch {meta['train_config']['batch_size']}, history length {meta['feature_spec']['history_len']}, "
             f"training fraction {meta['train_config']['sample_fraction']:.3f} of the training days' rows.", "",
             "## Test AUC", "",
             "| Model | S-CTR AUC | S-CTCVR AUC | R-CTR AUC | R-CTCVR AUC |",
             "|---|---|---|---|---|"]
    for base in meta["bases"]:
        for name in (base, f"{base}+USR"):
            v = variants[name]
            cells = [_fmt(v["mean"][k], v["std"][k]) for k in AUC_KEYS]
            if name != base:
                cells = [f"{c} ({results['relaimpr'][base][k] * 100:+.2f}%)" for c, k in zip(cells, AUC_KEYS)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["oracle"]:
        lines.append("| oracle (true probabilities) | " + " | ".join(
            f"{results['oracle'].get(f'oracle_{k}', float('nan')):.4f}" for k in AUC_KEYS) + " |")
    cnt = results["usr_better_cells"]
    lines += ["", f"(+x%) = RelaImpr of base+USR over the base. USR's mean AUC is higher in "
              f"{cnt['improved']} of {cnt['cells']} cells.", ""]
    lines += ["## GAUC and logloss (mean over seeds)", "",
              "| Model | S-CTR GAUC | S-CTCVR GAUC | R-CTR GAUC | R-CTCVR GAUC | S-CTR LL | S-CTCVR LL | R-CTR LL | R-CTCVR LL |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, v in variants.items():
        lines.append(f"| {name} | " + " | ".join(f"{v['mean'][f'{t}_gauc']:.4f}" for t in TASKS) + " | "
                     + " | ".join(f"{v['mean'][f'{t}_logloss']:.4f}" for t in TASKS) + " |")
    ablated = [n for n, v in variants.items() if v["ablated"]]
    if ablated:
        base = variants[ablated[0]]["base"]
        lines += ["", f"## Ablation on {base}", "",
                  "| Variant | S-CTR AUC | S-CTCVR AUC | R-CTR AUC | R-CTCVR AUC | mean AUC |", "|---|---|---|---|---|---|"]
        for name in [base, f"{base}+USR"] + ablated:
            v = variants[name]
            lines.append(f"| {name} | " + " | ".join(_fmt(v["mean"][k], v["std"][k]) for k in AUC_KEYS)
                         + f" | {v['mean']['mean_auc']:.4f} |")
    lines += ["", "## Training cost (mean over seeds)", "",
              "| Model | parameters | training seconds | samples/s | epochs run |", "|---|---|---|---|---|"]
    for name, v in variants.items():
        lines.append(f"| {name} | {v['parameters']} | {v['mean']['train_seconds']:.1f} | "
                     f"{v['mean']['samples_per_second']:.0f} | {v['mean']['epochs_run']:.1f} |")
    return "\n".join(lines) + "\n"


def plot_results(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants, bases = results["variants"], results["meta"]["bases"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
    x = np.arange(len(bases))
    for ax, key in zip(axes, AUC_KEYS):
        for offset, suffix, label in ((-0.2, "", "base"), (0.2, "+USR", "base+USR")):
            means = [variants[b + suffix]["mean"][key] for b in bases]
            stds = [variants[b + suffix]["std"][key] for b in bases]
            ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=label)
        oracle = results["oracle"].get(f"oracle_{key}")
        if oracle:
            ax.axhline(oracle, color="black", linestyle="--", linewidth=1, label="oracle")
        lo = min(variants[b + s]["mean"][key] for b in bases for s in ("", "+USR"))
        hi = max([variants[b + s]["mean"][key] for b in bases for s in ("", "+USR")] + [oracle or 0])
        ax.set_ylim(max(0.0, lo - 0.02), min(1.0, hi + 0.01))
        ax.set_xticks(x, bases, rotation=30)
        ax.set_title(f"{TASK_TITLES[key[:-4]]} AUC")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Test AUC, mean ± std over {results['meta']['seeds']} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablation(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["variants"]
    ablated = [n for n, v in variants.items() if v["ablated"]]
    base = variants[ablated[0]]["base"]
    names = [base, f"{base}+USR"] + ablated
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(AUC_KEYS))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(x + (i - len(names) / 2 + 0.5) * width, [variants[name]["mean"][k] for k in AUC_KEYS], width,
               yerr=[variants[name]["std"][k] for k in AUC_KEYS], capsize=2, label=name)
    lo = min(variants[n]["mean"][k] for n in names for k in AUC_KEYS)
    hi = max(variants[n]["mean"][k] for n in names for k in AUC_KEYS)
    ax.set_ylim(max(0.0, lo - 0.02), min(1.0, hi + 0.01))
    ax.set_xticks(x, [TASK_TITLES[k[:-4]] for k in AUC_KEYS])
    ax.set_ylabel("test AUC")
    ax.legend(fontsize=8, ncol=3)
    ax.set_title(f"Ablation of USR on {base}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out_dir / "results.md").write_text(results_markdown(results))
    plot_results(results, out_dir / "results.png")
    if any(v["ablated"] for v in results["variants"].values()):
        plot_ablation(results, out_dir / "results_ablation.png")
