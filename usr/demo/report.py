"""The demo's report: ``report.md`` plus PNG charts and ``report.json``."""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from usr.demo.live import LiveRecord, ab_summary

TASKS = ("search_ctr", "search_ctcvr", "rec_ctr", "rec_ctcvr")
SECTIONS = ("Offline AUC", "Online CTR and CTCVR over time", "A/B test", "Feature freshness",
            "Gateway latency", "Retraining decisions")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _windows(records: list[LiveRecord], n_windows: int = 12) -> list[list[LiveRecord]]:
    if not records:
        return []
    k = max(1, math.ceil(len(records) / n_windows))
    return [records[i:i + k] for i in range(0, len(records), k)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_online(records: list[LiveRecord], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm in sorted({r.arm for r in records}):
        rs = [r for r in records if r.arm == arm]
        wins = _windows(rs)
        x = [np.mean([r.event_ts for r in w]) / 3_600_000 for w in wins]
        x0 = x[0] if x else 0
        ctr = [sum(r.clicks for r in w) / max(1, sum(r.shown for r in w)) for w in wins]
        ctcvr = [sum(r.orders for r in w) / max(1, sum(r.shown for r in w)) for w in wins]
        axes[0].plot(np.array(x) - x0, ctr, marker="o", label=arm)
        axes[1].plot(np.array(x) - x0, ctcvr, marker="o", label=arm)
        changes = [r for prev, r in zip(rs, rs[1:]) if r.model_version != prev.model_version]
        for r in changes:
            for ax in axes:
                ax.axvline(r.event_ts / 3_600_000 - x0, color="grey", lw=0.6, ls="--")
    for ax, title in zip(axes, ("online CTR", "online CTCVR")):
        ax.set_title(f"{title} (dashed: model switch)")
        ax.set_xlabel("simulated hours since the first live request")
        ax.legend()
    _save(fig, path)


def plot_latency(records: list[LiveRecord], path: Path) -> None:
    plt = _pyplot()
    wins = _windows(records, 20)
    x = [np.mean([r.wall_s for r in w]) for w in wins]
    fig, ax = plt.subplots(figsize=(6, 4))
    for q, label in ((50, "p50"), (99, "p99")):
        ax.plot(x, [np.percentile([r.latency_ms for r in w], q) for w in wins], marker=".", label=label)
    ax.set_xlabel("wall seconds into the live phase")
    ax.set_ylabel("Rank latency at the client (ms)")
    ax.set_title("gateway latency")
    ax.legend()
    _save(fig, path)


def plot_freshness(samples_ms: list[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if samples_ms:
        ax.hist(samples_ms, bins=30)
    ax.set_xlabel("click published -> readable in the online store (ms)")
    ax.set_ylabel("probes")
    ax.set_title("feature freshness")
    _save(fig, path)


def plot_offline(offline: dict[str, dict[str, float]], oracle: dict[str, float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(offline) + (["oracle"] if oracle else [])
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        vals = [(oracle.get(f"oracle_{t}_auc") if name == "oracle" else offline[name].get(f"{t}_auc")) or float("nan")
                for t in TASKS]
        ax.bar(np.arange(len(TASKS)) + k * width, vals, width, label=name)
    ax.set_xticks(np.arange(len(TASKS)) + width * (len(names) - 1) / 2, TASKS)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUC on the newest held-out slice")
    ax.legend()
    _save(fig, path)


def write_report(out: Path, *, preset: dict[str, Any], phases: dict[str, float], offline: dict[str, dict],
                 oracle: dict[str, float], records: list[LiveRecord], freshness_ms: list[float],
                 freshness_timeouts: int, retrains: dict[str, list[dict]], stream_stats: dict[str, Any],
                 arms: dict[str, str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plot_online(records, out / "online_ctr_ctcvr.png")
    plot_latency(records, out / "gateway_latency.png")
    plot_freshness(freshness_ms, out / "feature_freshness.png")
    plot_offline(offline, oracle, out / "offline_auc.png")
    ab = ab_summary(records)
    lat = np.array([r.latency_ms for r in records]) if records else np.array([float("nan")])
    fresh = np.array(freshness_ms) if freshness_ms else np.array([float("nan")])
    lines = [f"# USR stack demo report (preset `{preset['name']}`)", ""]
    lines += ["Wall time per phase (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()), ""]
    lines += ["## Offline AUC", "",
              "Each arm's first model, trained on the stream-built labelled rows and evaluated on the newest "
              "held-out slice (time-ordered). Oracle: the simulator's true probabilities (the ceiling).", "",
              "| model | " + " | ".join(TASKS) + " | mean |", "|---" * (len(TASKS) + 2) + "|"]
    for name, m in offline.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(f"{t}_auc")) for t in TASKS) + f" | {_fmt(m.get('mean_auc'))} |")
    if oracle:
        lines.append("| oracle | " + " | ".join(_fmt(oracle.get(f"oracle_{t}_auc")) for t in TASKS) + " | |")
    lines += ["", "![offline AUC](offline_auc.png)", ""]
    lines += ["## Online CTR and CTCVR over time", "",
              f"{len(records)} live requests, {sum(r.shown for r in records)} impressions, "
              f"{sum(r.clicks for r in records)} clicks, {sum(r.orders for r in records)} orders; "
              f"{sum(r.fallback for r in records)} answered by the fallback.", "",
              "![online CTR and CTCVR](online_ctr_ctcvr.png)", ""]
    lines += ["## A/B test", "", "Shoppers split by a stable hash of the user id: " +
              ", ".join(f"arm `{a}` = model `{m}`" for a, m in sorted(arms.items())) +
              ". 95% intervals are clustered by user (the unit shoppers are randomised by). `expected_*` "
              "use the simulator's true probabilities of what was shown (no sampling noise, but still "
              "different shoppers per arm).", "",
              "| arm | requests | users | impressions | CTR [95% CI] | CTCVR [95% CI] | expected CTR | expected CTCVR |",
              "|---|---|---|---|---|---|---|---|"]
    for arm in sorted(a for a in ab if a not in ("lift", "paired")):
        r = ab[arm]

        def ci(metric: str) -> str:
            m = r[metric]
            return f"{_fmt(m['rate'])} [{_fmt(m['ci95'][0])}, {_fmt(m['ci95'][1])}]"

        lines.append(f"| {arm} | {r['requests']} | {r.get('users', '–')} | {r['impressions']} | {ci('ctr')} | {ci('ctcvr')} | "
                     f"{_fmt(r['expected_ctr']['rate'])} | {_fmt(r['expected_ctcvr']['rate'])} |")
    if "lift" in ab:
        lines += ["", "Relative lift of the second arm over the first: " +
                  ", ".join(f"{k} {v * 100:+.1f}%" for k, v in ab["lift"].items())]
    if "paired" in ab:
        def pct(d: dict) -> str:
            return f"{d['lift'] * 100:+.2f}% [{d['ci95'][0] * 100:+.2f}%, {d['ci95'][1] * 100:+.2f}%]"

        p = ab["paired"]
        lines += ["", "Paired comparison (simulation only): every request was also ranked by the other arm's "
                  "model, and both rankings were scored with the true probabilities of what the shopper "
                  f"would see. Second arm's model against the first's over {p['clicks']['requests']} requests: "
                  f"expected clicks {pct(p['clicks'])}, expected orders {pct(p['orders'])} (95% CI, clustered by user)."]
    lines += ["", "## Feature freshness", "",
              f"Time from publishing a click to reading it in the user's online history: "
              f"p50 {_fmt(float(np.nanpercentile(fresh, 50)), 1)} ms, p99 {_fmt(float(np.nanpercentile(fresh, 99)), 1)} ms "
              f"over {len(freshness_ms)} probes ({freshness_timeouts} timed out after 10 s).",
              f"Stream jobs: {json.dumps(stream_stats)}", "", "![feature freshness](feature_freshness.png)", ""]
    lines += ["## Gateway latency", "",
              f"Rank round trip at the client, {len(records)} requests: p50 {_fmt(float(np.nanpercentile(lat, 50)), 1)} ms, "
              f"p99 {_fmt(float(np.nanpercentile(lat, 99)), 1)} ms.", "", "![gateway latency](gateway_latency.png)", ""]
    lines += ["## Retraining decisions", "", "| model | version | parent | decision | reason | rows (train/holdout) | seconds |",
              "|---|---|---|---|---|---|---|"]
    for model, recs in retrains.items():
        for r in recs:
            w = r.get("data_window") or {}
            lines.append(f"| {model} | {r['version']} | {r['parent'] if r['parent'] is not None else '–'} | "
                         f"{r['decision']} | {r['reason']} | {w.get('train_rows', '–')}/{w.get('holdout_rows', '–')} | "
                         f"{r.get('train_seconds', '–')} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps({
        "preset": preset, "phases_s": phases, "offline": offline, "oracle": oracle, "ab": ab,
        "freshness_ms": {"p50": float(np.nanpercentile(fresh, 50)), "p99": float(np.nanpercentile(fresh, 99)),
                         "probes": len(freshness_ms), "timeouts": freshness_timeouts},
        "latency_ms": {"p50": float(np.nanpercentile(lat, 50)), "p99": float(np.nanpercentile(lat, 99))},
        "retrains": retrains, "stream": stream_stats, "live_records": [asdict(r) for r in records],
    }, indent=1, default=float))
    return out / "report.md"
