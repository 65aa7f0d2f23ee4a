"""Data-parallel training: 2 processes under torchrun (gloo, CPU) reach what one process
with the same global batch reaches (same rows per step, gradients averaged)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.conftest_model import tiny_spec, write_dataset

ROOT = Path(__file__).resolve().parents[2]
AUCS = ("search_ctr_auc", "search_ctcvr_auc", "rec_ctr_auc", "rec_ctcvr_auc")


def _train_args(data, out, spec_path, batch):
    return ["--data", str(data), "--out", str(out), "--model", "SharedBottom", "--spec", str(spec_path),
            "--set", "embedding_dim=4", "--epochs", "1", "--batch-size", str(batch), "--no-progress", "--threads", "1"]


def test_two_process_ddp_matches_one_process(tmp_path):
    data = write_dataset(tmp_path / "data", n=2400, days=3)
    spec_path = tmp_path / "spec.json"
    tiny_spec().save(spec_path)
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "model.ddp",
         *_train_args(data, tmp_path / "ddp", spec_path, 64)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "usr.cli", "train", *_train_args(data, tmp_path / "one", spec_path, 128)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    two = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["train_samples"] == one["train_samples"]
    for key in AUCS + ("search_ctr_logloss", "rec_ctr_logloss"):
        assert two["test"][key] == pytest.approx(one["test"][key], abs=2e-4), key
