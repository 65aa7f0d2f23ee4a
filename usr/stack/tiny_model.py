"""A tiny TorchScript model for smoke tests of a Triton model repository.

``y = x @ w`` and ``p = sigmoid(y)`` with a fixed ``w``, so a test can check the
server's answer against the same computation done locally.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_MODEL_NAME = "tiny"
TINY_WEIGHTS = torch.tensor([[0.5], [-1.0], [2.0], [0.25]])


class TinyModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(TINY_WEIGHTS.clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = (x @ self.w).squeeze(1)
        return y, torch.sigmoid(y)


def write_tiny_model(repo: Path, version: int = 1) -> Path:
    """Script TinyModel into ``repo/tiny/<version>/model.pt`` with its signature."""
    model_dir = Path(repo) / TINY_MODEL_NAME
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    torch.jit.script(TinyModel()).save(str(model_dir / str(version) / "model.pt"))
    signature = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [1]},
                    {"name": "p", "dtype": "float32", "shape": [1]}],
        "max_batch_size": 64,
    }
    (model_dir / "signature.json").write_text(json.dumps(signature, indent=2))
    return model_dir
