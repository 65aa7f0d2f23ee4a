"""Which versions a Triton model repository holds and which one servers serve.

Torch-free on purpose: the gateway reads this on its hot path and need not import torch.
"""
from __future__ import annotations

from pathlib import Path

SERVING_POINTER = "serving_version"  # optional file naming the version a server should serve


def versions(repo: Path, name: str) -> list[int]:
    model_dir = Path(repo) / name
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / "model.pt").is_file())


def serving_version(repo: Path, name: str) -> int | None:
    """The version servers serve: the pinned one (``serving_version`` file) if it exists, else the newest.
    (usr/stack/triton_host.py applies the same rule in its own environment.)"""
    available = versions(repo, name)
    try:
        pinned = int((Path(repo) / name / SERVING_POINTER).read_text().strip())
        if pinned in available:
            return pinned
    except (OSError, ValueError):
        pass
    return available[-1] if available else None
