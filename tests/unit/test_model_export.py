"""Export: TorchScript file + feature spec, loads back and scores like the eager model."""
import json

import torch

from tests.unit.conftest_model import tiny_spec, tiny_table
from features.spec import INPUT_NAMES, FeatureSpec
from features.tensors import build_inputs
from model.configs import build_model
from model.export import export_model, load_exported


def test_export_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = tiny_spec()
    model = build_model("M2M+USR", spec, embedding_dim=4).eval()
    x = build_inputs(spec, tiny_table(40))
    export_model(model, tmp_path / "v1", check_inputs=x)
    scripted, loaded_spec = load_exported(tmp_path / "v1")
    assert loaded_spec == spec and isinstance(loaded_spec, FeatureSpec)
    # the gateway path: python lists -> the saved spec -> the saved model
    table = tiny_table(5, seed=9)
    rows = {name: table.column(name).to_pylist() for name in loaded_spec.input_columns}
    y = build_inputs(loaded_spec, rows)
    ctr, ctcvr = scripted(*[y[n] for n in INPUT_NAMES])
    with torch.no_grad():
        eager = model(**y)
    torch.testing.assert_close(ctr, eager["ctr"])
    torch.testing.assert_close(ctcvr, eager["ctcvr"])
    signature = json.loads((tmp_path / "v1" / "signature.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == list(INPUT_NAMES)
    assert [o["name"] for o in signature["outputs"]] == ["ctr", "ctcvr"]
    assert json.loads((tmp_path / "v1" / "model_config.json").read_text())["name"] == "M2M+USR"
