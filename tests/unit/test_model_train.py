"""Trainer: learning, determinism, early stopping, checkpoints, resume, warm start."""
import json

import pytest
import torch

from tests.unit.conftest_model import tiny_spec, write_dataset
from model.configs import get_config
from model.data import BatchStream
from model.runner import train_variant
from model.train import TrainConfig, Trainer, evaluate_model, load_weights, make_model

SMALL = {"embedding_dim": 4, "base_params": {"bottom": [16, 8]}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("train"), n=3000, days=4, n_users=40, n_items=60)


def _fit(data_dir, out, epochs=2, seed=0, lr=1e-2, resume=False, warm_start=None, patience=5, name="SharedBottom+USR"):
    spec = tiny_spec()
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=lr, embedding_lr=lr, seed=seed, patience=patience,
                      progress=False, prefetch=0)
    model = make_model(get_config(name, **SMALL), spec, seed)
    trainer = Trainer(model, cfg, out)
    train = BatchStream(data_dir, spec, [0, 1], 128, shuffle=True, seed=seed, drop_last=True, prefetch=0)
    valid = BatchStream(data_dir, spec, [2], 1024, prefetch=0)
    return model, trainer.fit(train, valid, resume=resume, warm_start=warm_start)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_learns_the_planted_signal(data_dir, tmp_path):
    spec = tiny_spec()
    untrained = make_model(get_config("SharedBottom+USR", **SMALL), spec, 0)
    model, result = _fit(data_dir, tmp_path / "a", epochs=3)
    train_days = BatchStream(data_dir, spec, [0, 1], 1024, prefetch=0)
    before, _ = evaluate_model(untrained, train_days)
    after, _ = evaluate_model(model, train_days)
    assert after["search_ctr_auc"] > before["search_ctr_auc"] + 0.05
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.samples_per_second > 0 and (tmp_path / "a" / "checkpoints" / "best.pt").exists()


def test_same_seed_same_weights_other_seed_other_weights(data_dir, tmp_path):
    a, _ = _fit(data_dir, tmp_path / "a", epochs=1, seed=1)
    b, _ = _fit(data_dir, tmp_path / "b", epochs=1, seed=1)
    c, _ = _fit(data_dir, tmp_path / "c", epochs=1, seed=2)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_matches_an_uninterrupted_run(data_dir, tmp_path):
    straight, _ = _fit(data_dir, tmp_path / "straight", epochs=2)
    _fit(data_dir, tmp_path / "resumed", epochs=1)
    resumed, result = _fit(data_dir, tmp_path / "resumed", epochs=2, resume=True)
    assert [h["epoch"] for h in result.history] == [0, 1]
    ws, wr = _weights(straight), _weights(resumed)
    for k in ws:
        torch.testing.assert_close(ws[k], wr[k], atol=1e-6, rtol=1e-5)


def test_early_stopping_when_validation_does_not_improve(data_dir, tmp_path):
    _, result = _fit(data_dir, tmp_path / "frozen", epochs=5, lr=1e-12, patience=2)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 0


def test_warm_start_loads_matching_weights(data_dir, tmp_path):
    trained, _ = _fit(data_dir, tmp_path / "first", epochs=1)
    fresh = make_model(get_config("SharedBottom+USR", **SMALL), tiny_spec(), 99)
    loaded, skipped = load_weights(fresh, tmp_path / "first" / "checkpoints" / "best.pt")
    assert skipped == [] and len(loaded) == len(trained.state_dict())
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in trained.state_dict().items())
    # a different model shares the embedding table and the interest extractor but not the base
    other = make_model(get_config("MMoE+USR", embedding_dim=4), tiny_spec(), 0)
    loaded, skipped = load_weights(other, tmp_path / "first" / "checkpoints" / "best.pt")
    assert "embedding.table.weight" in loaded and any(k.startswith("base.") for k in skipped)
    # and warm start continues training from there
    _, result = _fit(data_dir, tmp_path / "second", epochs=1, warm_start=tmp_path / "first" / "checkpoints" / "best.pt")
    assert result.history[0]["warm_start"].endswith("best.pt")


def test_runner_writes_metrics_with_oracle(data_dir, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=256, progress=False, prefetch=0)
    summary = train_variant(data_dir, tmp_path / "run", get_config("MMoE", embedding_dim=4), tiny_spec(), cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["split"] == {"train": [0, 1], "valid": [2], "test": [3]}
    for key in ("search_ctr_auc", "search_ctcvr_auc", "rec_ctr_auc", "rec_ctcvr_auc", "rec_ctr_gauc", "rec_ctr_logloss"):
        assert key in written["test"]
    assert 0.5 < written["oracle"]["oracle_search_ctr_auc"] < 1
    assert summary["samples_per_second"] > 0
