"""`usr experiment` end to end on a tiny table: results.json / results.md / PNG, resumable."""
import json

from tests.unit.conftest_model import tiny_spec, write_dataset
from usr.cli import main


def test_experiment_writes_results_and_resumes(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", n=1200, days=3)
    spec_path = tmp_path / "spec.json"
    tiny_spec().save(spec_path)
    out = tmp_path / "exp"
    argv = ["experiment", "--data", str(data), "--out", str(out), "--base", "shared_bottom", "--seeds", "2",
            "--ablations", "--ablation-base", "SharedBottom", "--epochs", "1", "--batch-size", "256",
            "--jobs", "1", "--spec", str(spec_path), "--no-progress"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    names = set(results["variants"])
    assert {"SharedBottom", "SharedBottom+USR", "SharedBottom+USR-IE", "SharedBottom+USR-FG",
            "SharedBottom+USR-GLMT", "SharedBottom+USR-CL"} == names
    usr = results["variants"]["SharedBottom+USR"]
    assert set(usr["per_seed"]) == {"0", "1"}
    for key in ("search_ctr_auc", "search_ctcvr_auc", "rec_ctr_auc", "rec_ctcvr_auc", "rec_ctr_gauc",
                "search_ctr_logloss", "train_seconds", "samples_per_second"):
        assert key in usr["mean"] and key in usr["std"] and key in usr["per_seed"]["1"]
    assert usr["std"]["search_ctr_auc"] >= 0
    assert set(results["oracle"]) >= {"oracle_search_ctr_auc", "oracle_rec_ctcvr_auc"}
    assert "search_ctr_auc" in results["relaimpr"]["SharedBottom"]
    md = (out / "results.md").read_text()
    assert "| SharedBottom+USR |" in md and "S-CTCVR AUC" in md and "Ablation on SharedBottom" in md
    assert (out / "results.png").stat().st_size > 1000 and (out / "results_ablation.png").exists()
    # a second run finds every (variant, seed) done and only re-aggregates
    capsys.readouterr()
    assert main(argv) == 0
    assert "12 already done" in capsys.readouterr().out
