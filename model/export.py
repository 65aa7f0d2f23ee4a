"""Export: TorchScript (``torch.jit.script``) of the serving module + the feature spec.

Layout of an export directory::

    model.pt            scripted ServingModule: forward(scenario, user, item, context, query,
                        hist, hist_mask) -> (ctr [B], ctcvr [B])
    feature_spec.json   the FeatureSpec the inputs must be built with (features.tensors)
    model_config.json   the model's configuration block
    signature.json      input names, dtypes and shapes (-1 = variable), output names

Every variant scripts; tracing is never needed (all control flow depends only on
configuration, and the scripted module is checked against the eager one on a batch).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from features.spec import INPUT_NAMES, FeatureSpec
from model.usr_model import RankingModel, ServingModule

OUTPUT_NAMES = ("ctr", "ctcvr")


def script_model(model: RankingModel) -> torch.jit.ScriptModule:
    serving = ServingModule(model).eval()
    return torch.jit.script(serving)


def input_signature(spec: FeatureSpec) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "scenario", "dtype": "int64", "shape": [-1]},
            {"name": "user", "dtype": "int64", "shape": [-1, len(spec.user_fields)]},
            {"name": "item", "dtype": "int64", "shape": [-1, len(spec.item_fields)]},
            {"name": "context", "dtype": "int64", "shape": [-1, len(spec.context_fields)]},
            {"name": "query", "dtype": "int64", "shape": [-1, 1 + spec.query_len]},
            {"name": "hist", "dtype": "int64", "shape": [-1, spec.history_len, len(spec.hist_fields)]},
            {"name": "hist_mask", "dtype": "float32", "shape": [-1, spec.history_len]},
        ],
        "outputs": [{"name": n, "dtype": "float32", "shape": [-1]} for n in OUTPUT_NAMES],
    }


def export_model(model: RankingModel, out_dir: str | Path, *, check_inputs: dict[str, torch.Tensor] | None = None,
                 atol: float = 1e-5) -> Path:
    """Script, optionally check scripted == eager on ``check_inputs``, and write the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    scripted = script_model(model)
    if check_inputs is not None:
        with torch.no_grad():
            eager = model(**check_inputs)
            got = scripted(*[check_inputs[n] for n in INPUT_NAMES])
        for name, value in zip(OUTPUT_NAMES, got):
            if not torch.allclose(value, eager[name], atol=atol):
                raise RuntimeError(f"export: scripted {name} differs from eager by {(value - eager[name]).abs().max():.3g}")
    scripted.save(str(out / "model.pt"))
    model.spec.save(out / "feature_spec.json")
    (out / "model_config.json").write_text(json.dumps(model.config.to_dict(), indent=2))
    (out / "signature.json").write_text(json.dumps(input_signature(model.spec), indent=2))
    return out


def load_exported(out_dir: str | Path) -> tuple[torch.jit.ScriptModule, FeatureSpec]:
    out = Path(out_dir)
    return torch.jit.load(str(out / "model.pt"), map_location="cpu"), FeatureSpec.load(out / "feature_spec.json")


def load_checkpoint_model(checkpoint: str | Path) -> RankingModel:
    """Rebuild a RankingModel from a trainer checkpoint (best.pt or last.pt)."""
    from model.configs import ModelConfig

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = RankingModel(ModelConfig.from_dict(state["model_config"]), FeatureSpec.from_json(state["spec"]))
    model.load_state_dict(state["model"])
    return model.eval()
