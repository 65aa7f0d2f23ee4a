"""Publish a trained model into the Triton model repository as a new version.

    triton_repo/<name>/config.pbtxt             official Triton container (backend: pytorch)
    triton_repo/<name>/signature.json           the same signature for the local Triton host
    triton_repo/<name>/<version>/model.pt       TorchScript: inputs of features.spec.INPUT_NAMES,
                                                outputs ctr [B], ctcvr [B], model_version [B]
    triton_repo/<name>/<version>/feature_spec.json, model_config.json

The model carries its own version as an output, so a client learns which version
scored a request from the answer itself, whichever server (official container or
local host) runs it. A version directory is written under a temporary name and
renamed into place, so a server polling the repository never sees half a model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from features.spec import INPUT_NAMES, FeatureSpec
from model.repository import SERVING_POINTER, serving_version, versions

OUTPUT_NAMES = ("ctr", "ctcvr", "model_version")


class VersionedServing(torch.nn.Module):
    """Wraps a scripted serving module; adds the ``model_version`` output."""

    def __init__(self, serving: torch.jit.ScriptModule, version: int) -> None:
        super().__init__()
        self.serving = serving
        self.register_buffer("version", torch.tensor(int(version), dtype=torch.int64))

    def forward(self, scenario: Tensor, user: Tensor, item: Tensor, context: Tensor, query: Tensor,
                hist: Tensor, hist_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctr, ctcvr = self.serving(scenario, user, item, context, query, hist, hist_mask)
        return ctr, ctcvr, self.version.expand(scenario.size(0)).clone()


def triton_signature(spec: FeatureSpec, max_batch_size: int = 1024) -> dict[str, Any]:
    """Inputs/outputs without the batch dimension (Triton's convention with max_batch_size > 0)."""
    dims = {
        "scenario": ("int64", []),
        "user": ("int64", [len(spec.user_fields)]),
        "item": ("int64", [len(spec.item_fields)]),
        "context": ("int64", [len(spec.context_fields)]),
        "query": ("int64", [1 + spec.query_len]),
        "hist": ("int64", [spec.history_len, len(spec.hist_fields)]),
        "hist_mask": ("float32", [spec.history_len]),
    }
    # per-row scalars are [B] in the model: Triton carries them as [B, 1] with reshape []
    scalar = {"shape": [1], "reshape": []}
    return {
        "inputs": [{"name": n, "dtype": dims[n][0], **({"shape": dims[n][1]} if dims[n][1] else scalar)}
                   for n in INPUT_NAMES],
        "outputs": [{"name": "ctr", "dtype": "float32", **scalar},
                    {"name": "ctcvr", "dtype": "float32", **scalar},
                    {"name": "model_version", "dtype": "int64", **scalar}],
        "max_batch_size": max_batch_size,
    }


_PBTXT_TYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32"}


def config_pbtxt(name: str, signature: dict[str, Any], version: int) -> str:
    """config.pbtxt for the official Triton container's PyTorch (libtorch) backend, serving
    exactly ``version`` (a server polling the repository follows promotions and rollbacks)."""
    def tensor(t: dict[str, Any]) -> str:
        dims = ", ".join(str(d) for d in t["shape"])
        reshape = "\n    reshape: { shape: [ ] }" if t.get("reshape") == [] else ""
        return (f"  {{\n    name: \"{t['name']}\"\n    data_type: {_PBTXT_TYPES[t['dtype']]}\n"
                f"    dims: [ {dims} ]{reshape}\n  }}")

    inputs = ",\n".join(tensor(t) for t in signature["inputs"])
    outputs = ",\n".join(tensor(t) for t in signature["outputs"])
    return f"""name: "{name}"
backend: "pytorch"
max_batch_size: {signature['max_batch_size']}
# named inputs are matched by name (the forward() argument names)
parameters: {{ key: "INFERENCE_MODE" value: {{ string_value: "true" }} }}
input [
{inputs}
]
output [
{outputs}
]
version_policy: {{ specific: {{ versions: [ {version} ] }} }}
dynamic_batching {{ max_queue_delay_microseconds: 200 }}
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
model_warmup [
  {{
    name: "zeros"
    batch_size: 8
{_warmup_inputs(signature)}
  }}
]
"""


def _warmup_inputs(signature: dict[str, Any]) -> str:
    lines = []
    for t in signature["inputs"]:
        dims = ", ".join(str(d) for d in t["shape"])
        lines.append(f"    inputs {{ key: \"{t['name']}\" value: {{ data_type: {_PBTXT_TYPES[t['dtype']]} "
                     f"dims: [ {dims} ] zero_data: true }} }}")
    return "\n".join(lines)


def publish(serving: torch.jit.ScriptModule, spec: FeatureSpec, repo: Path, name: str = "usr",
            version: int | None = None, model_config: dict[str, Any] | None = None,
            max_batch_size: int = 1024) -> int:
    """Write ``serving`` (a scripted module returning (ctr, ctcvr)) as a new version; return it."""
    repo = Path(repo)
    model_dir = repo / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version if version is not None else (max(versions(repo, name), default=0) + 1)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists: versions are immutable")
    staging = model_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    wrapped = torch.jit.script(VersionedServing(serving, version))
    wrapped.save(str(staging / "model.pt"))
    spec.save(staging / "feature_spec.json")
    if model_config is not None:
        (staging / "model_config.json").write_text(json.dumps(model_config, indent=2))
    signature = triton_signature(spec, max_batch_size)
    _write_atomic(model_dir / "signature.json", json.dumps(signature, indent=2))
    staging.rename(final)
    _write_atomic(model_dir / "config.pbtxt", config_pbtxt(name, signature, serving_version(repo, name) or version))
    return version


def set_serving_version(repo: Path, name: str, version: int) -> None:
    """Pin the version servers should serve (used by rollback); see the local Triton host."""
    if version not in versions(repo, name):
        raise FileNotFoundError(f"{name} version {version} is not in {repo}")
    model_dir = Path(repo) / name
    _write_atomic(model_dir / SERVING_POINTER, f"{version}\n")
    signature = json.loads((model_dir / "signature.json").read_text())
    _write_atomic(model_dir / "config.pbtxt", config_pbtxt(name, signature, version))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
