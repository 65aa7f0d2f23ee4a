"""The README's main job, end to end on the small preset (real Kafka, stream workers,
Feast, Triton, gateway), on ports of its own."""
from __future__ import annotations

import json

import pytest

from tests.conftest import stack_config
from usr.demo.presets import get_preset
from usr.demo.report import SECTIONS
from usr.demo.run import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_small_demo_runs_end_to_end_and_reports_every_section(tmp_path) -> None:
    config = stack_config(tmp_path / "unused")
    report = run_demo(config, get_preset("small"), tmp_path / "demo")
    text = report.read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, section
    for png in ("online_ctr_ctcvr.png", "gateway_latency.png", "feature_freshness.png", "offline_auc.png"):
        assert (report.parent / png).stat().st_size > 5000, png
    data = json.loads((report.parent / "report.json").read_text())
    assert {"A", "B", "lift", "paired"} <= set(data["ab"])
    assert data["ab"]["paired"]["clicks"]["requests"] == get_preset("small").live_requests
    records = data["live_records"]
    assert len(records) == get_preset("small").live_requests
    assert sum(r["fallback"] for r in records) == 0, "every live request was scored by a model"
    assert sum(r["clicks"] for r in records) > 0 and sum(r["shown"] for r in records) > 0
    assert all(m["mean_auc"] > 0.55 for m in data["offline"].values()), data["offline"]
    assert data["freshness_ms"]["probes"] > 0 and data["freshness_ms"]["p99"] < 10_000
    decisions = [r["decision"] for recs in data["retrains"].values() for r in recs]
    assert decisions.count("promoted") >= 2  # each arm's first model
    assert len(decisions) >= 3, f"no scheduled retrain ran: {decisions}"
