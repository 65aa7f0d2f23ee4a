"""Scores through Triton over gRPC (asyncio), with a deadline.

Whichever server hosts the model (the official container or the local host), the
model reports its own version in the ``model_version`` output.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient

from features.spec import FeatureSpec
from model.repository import serving_version

_TRITON_DTYPES = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32"}


@dataclass
class Scores:
    ctr: np.ndarray
    ctcvr: np.ndarray
    model_version: int


class ModelRepository:
    """The serving model's feature spec, read from the Triton model repository.

    Follows the same rule as the servers: the pinned ``serving_version`` if present,
    else the newest version. Specs are cached per version.
    """

    def __init__(self, repo: Path, name: str, refresh_s: float = 0.5) -> None:
        self.model_dir = Path(repo) / name
        self.refresh_s = refresh_s
        self._specs: dict[int, FeatureSpec] = {}
        self._version: tuple[float, int | None] = (float("-inf"), None)

    def serving_version(self) -> int | None:
        """Re-read from disk at most every ``refresh_s`` (keeps directory scans off the hot path)."""
        checked_at, version = self._version
        now = time.monotonic()
        if now - checked_at >= self.refresh_s:
            version = serving_version(self.model_dir.parent, self.model_dir.name)
            self._version = (now, version)
        return version

    def spec(self, version: int) -> FeatureSpec:
        if version not in self._specs:
            self._specs[version] = FeatureSpec.from_json((self.model_dir / str(version) / "feature_spec.json").read_text())
        return self._specs[version]

    def signature(self) -> dict:
        return json.loads((self.model_dir / "signature.json").read_text())


class TritonScorer:
    def __init__(self, url: str, model_name: str, timeout_s: float) -> None:
        self.url, self.model_name, self.timeout_s = url, model_name, timeout_s
        self._client: grpcclient.InferenceServerClient | None = None

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        # created on first use, inside the serving event loop (the aio channel binds to it)
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self.url)
        return self._client

    async def score(self, arrays: dict[str, np.ndarray], reshape_scalars: set[str], model_name: str | None = None) -> Scores:
        inputs = []
        for name, a in arrays.items():
            if name in reshape_scalars:
                a = a.reshape(-1, 1)
            inp = grpcclient.InferInput(name, list(a.shape), _TRITON_DTYPES[a.dtype])
            inp.set_data_from_numpy(np.ascontiguousarray(a))
            inputs.append(inp)
        outputs = [grpcclient.InferRequestedOutput(n) for n in ("ctr", "ctcvr", "model_version")]
        result = await self.client.infer(model_name or self.model_name, inputs, outputs=outputs,
                                         client_timeout=self.timeout_s)
        version = result.as_numpy("model_version")
        return Scores(result.as_numpy("ctr").reshape(-1), result.as_numpy("ctcvr").reshape(-1),
                      int(version.reshape(-1)[0]) if version is not None and version.size else -1)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def wait_until_served(grpc_url: str, model_name: str, version: int, spec: FeatureSpec, scalars: set[str],
                      timeout_s: float = 60.0) -> None:
    """Block until Triton answers for ``model_name`` with ``version`` (its model_version output)."""
    import tritonclient.grpc as syncclient

    from features.tensors import build_input_arrays

    arrays = build_input_arrays(spec, {"scenario": ["rec"]}, allow_missing=True)
    client = syncclient.InferenceServerClient(grpc_url)
    deadline = time.monotonic() + timeout_s
    last: object = None
    try:
        while time.monotonic() < deadline:
            try:
                inputs = []
                for name, a in arrays.items():
                    a = a.reshape(-1, 1) if name in scalars else a
                    inp = syncclient.InferInput(name, list(a.shape), _TRITON_DTYPES[a.dtype])
                    inp.set_data_from_numpy(a)
                    inputs.append(inp)
                last = int(client.infer(model_name, inputs).as_numpy("model_version").reshape(-1)[0])
                if last == version:
                    return
            except Exception as exc:  # noqa: BLE001 - not loaded yet
                last = exc
            time.sleep(0.25)
    finally:
        client.close()
    raise TimeoutError(f"Triton did not serve {model_name} version {version} within {timeout_s:.0f}s (last: {last})")


def wait_until_repository_version_served(config, model_name: str, version: int, timeout_s: float = 60.0) -> None:
    """``wait_until_served`` with the spec and signature from the configured model repository."""
    repo = ModelRepository(config.triton.model_repository, model_name)
    scalars = {i["name"] for i in repo.signature()["inputs"] if i.get("reshape") == []}
    wait_until_served(config.triton.grpc_url, model_name, version, repo.spec(version), scalars, timeout_s)
