"""Helpers for the model tests (imported by tests/unit/test_model_*.py; not a pytest conftest).

A tiny feature spec (small hash tables, short histories) and a tiny random impression
table (model.synthetic) written as Parquet, so that every test runs in seconds on CPU.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import torch

from features.spec import FeatureSpec
from features.tensors import build_inputs
from model.synthetic import random_impressions

torch.set_num_threads(1)

TINY_BUCKETS = {
    "user_id": 1009, "user_segment": 16, "user_level": 8, "item_id": 1009, "cate1": 64, "cate2": 64,
    "brand": 128, "price_bucket": 16, "hour": 32, "weekday": 8, "position": 32, "query_id": 128,
    "query_terms": 512, "hist_source": 4, "hist_action": 4,
}


def tiny_spec(history_len: int = 10, query_len: int = 4) -> FeatureSpec:
    return FeatureSpec(history_len=history_len, query_len=query_len, buckets=dict(TINY_BUCKETS))


def tiny_table(n: int = 64, seed: int = 0, days: int = 4, **kwargs):
    return random_impressions(n, seed=seed, days=days, max_hist=15, **kwargs)


def tiny_inputs(n: int = 32, seed: int = 0, spec: FeatureSpec | None = None) -> dict[str, torch.Tensor]:
    return build_inputs(spec or tiny_spec(), tiny_table(n, seed))


def write_dataset(directory: Path, n: int = 2000, seed: int = 0, days: int = 4, **kwargs) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(tiny_table(n, seed, days, **kwargs), directory / "impressions.parquet")
    return directory


def assert_script_matches(module: torch.nn.Module, *args: torch.Tensor, atol: float = 1e-6) -> torch.jit.ScriptModule:
    """torch.jit.script the module and check that it gives the eager outputs on ``args``."""
    module.eval()
    scripted = torch.jit.script(module)
    with torch.no_grad():
        eager_out = module(*args)
        script_out = scripted(*args)
    flat_e = eager_out if isinstance(eager_out, (tuple, list)) else (list(eager_out.values()) if isinstance(eager_out, dict) else [eager_out])
    flat_s = script_out if isinstance(script_out, (tuple, list)) else (list(script_out.values()) if isinstance(script_out, dict) else [script_out])
    assert len(flat_e) == len(flat_s)
    for a, b in zip(flat_e, flat_s):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)
    return scripted
