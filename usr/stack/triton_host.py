"""Local Triton server: a real tritonserver (from nvidia-pytriton) hosting the
TorchScript models of a Triton model repository.

Runs in its own environment (.venv-triton: nvidia-pytriton 0.7.0, numpy<2, torch),
so it imports nothing from the project. The repository layout is the one the
official Triton container reads:

    <repo>/<model>/signature.json      inputs/outputs (name, dtype, shape without batch,
                                       optional "reshape": [] for per-row scalars), max_batch_size
    <repo>/<model>/config.pbtxt        for the official container (not read here)
    <repo>/<model>/<version>/model.pt  TorchScript
    <repo>/<model>/serving_version     optional: the version to serve (rollback); default newest

Every model with a signature is served under its own name. Versions switch in
place: pytriton 0.7.0 cannot bind a second version of a served model (its IPC
sockets are named by model only; the attempt takes the server down), so the host
binds each model once and, when the version to serve changes, loads the new
TorchScript module and swaps it under the running binding. Requests in flight
finish on the old module; none fails. Models report their version in an output
(see model/triton_export.py), so clients see the switch. Stop with SIGINT.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

LOG = logging.getLogger("triton_host")
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32, "bool": np.bool_}
POINTER = "serving_version"


def versions_of(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "model.pt").is_file())


def wanted_version(model_dir: Path) -> int | None:
    """The pinned version if the pointer names an existing one, else the newest."""
    available = versions_of(model_dir)
    try:
        pinned = int((model_dir / POINTER).read_text().strip())
        if pinned in available:
            return pinned
    except (OSError, ValueError):
        pass
    return available[-1] if available else None


class ServedModel:
    """One bound model whose TorchScript module can be swapped while serving."""

    def __init__(self, model_dir: Path, version: int) -> None:
        self.model_dir = model_dir
        self.signature_text = (model_dir / "signature.json").read_text()
        sig = json.loads(self.signature_text)
        self.inputs = sig["inputs"]
        self.outputs = sig["outputs"]
        self.max_batch_size = int(sig.get("max_batch_size", 1024))
        self.version = version
        self.module = self._load(version)

    def _load(self, version: int) -> torch.jit.ScriptModule:
        return torch.jit.load(str(self.model_dir / str(version) / "model.pt"), map_location="cpu").eval()

    def swap_to(self, version: int) -> None:
        if (self.model_dir / "signature.json").read_text() != self.signature_text:
            raise ValueError("signature changed: a new signature needs a new model name or a restart")
        module = self._load(version)
        self.module, self.version = module, version  # a reference swap: atomic under the GIL

    def infer_func(self):
        squeeze_in = {i["name"] for i in self.inputs if i.get("reshape") == []}
        input_names = [i["name"] for i in self.inputs]
        output_names = [o["name"] for o in self.outputs]

        @batch
        def infer(**arrays: np.ndarray) -> dict[str, np.ndarray]:
            module = self.module
            with torch.inference_mode():
                inputs = {}
                for n in input_names:
                    a = arrays[n]
                    if n in squeeze_in:
                        a = a.reshape(a.shape[0])
                    inputs[n] = torch.from_numpy(np.ascontiguousarray(a))
                result = module(**inputs)
            if isinstance(result, dict):
                outs = [result[n] for n in output_names]
            elif isinstance(result, (tuple, list)):
                outs = list(result)
            else:
                outs = [result]
            return {n: (t.reshape(-1, 1) if t.dim() == 1 else t).numpy() for n, t in zip(output_names, outs)}
        return infer

    def bind(self, triton: Triton) -> None:
        triton.bind(
            model_name=self.model_dir.name,
            infer_func=self.infer_func(),
            inputs=[Tensor(name=i["name"], dtype=DTYPES[i["dtype"]], shape=tuple(i["shape"])) for i in self.inputs],
            outputs=[Tensor(name=o["name"], dtype=DTYPES[o["dtype"]], shape=tuple(o["shape"])) for o in self.outputs],
            config=ModelConfig(max_batch_size=self.max_batch_size,
                               batcher=DynamicBatcher(max_queue_delay_microseconds=200)),
            strict=False,
        )
        LOG.info("bound model %s (serving version %d)", self.model_dir.name, self.version)


def model_dirs(repo: Path) -> list[Path]:
    if not repo.is_dir():
        return []
    return [d for d in sorted(repo.iterdir())
            if d.is_dir() and (d / "signature.json").is_file() and versions_of(d)]


def sync(triton: Triton, repo: Path, served: dict[str, ServedModel]) -> None:
    """Bind new models and switch versions where the wanted one changed."""
    for d in model_dirs(repo):
        want = wanted_version(d)
        try:
            if d.name not in served:
                model = ServedModel(d, want)
                model.bind(triton)
                served[d.name] = model
            elif want is not None and want != served[d.name].version:
                old = served[d.name].version
                served[d.name].swap_to(want)
                LOG.info("model %s: switched from version %d to %d", d.name, old, want)
        except Exception:  # noqa: BLE001 - a bad artifact must not take the server down
            LOG.exception("model %s: could not serve version %s; keeping what serves now", d.name, want)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--poll-s", type=float, default=0.5, help="how often to look for new versions")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per model call")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    config = TritonConfig(grpc_port=args.grpc_port, http_port=args.http_port, metrics_port=args.metrics_port,
                          grpc_address="127.0.0.1", http_address="127.0.0.1", exit_on_error=True)
    if args.workspace.exists():  # pytriton insists on creating the workspace itself
        shutil.rmtree(args.workspace)
    args.workspace.parent.mkdir(parents=True, exist_ok=True)
    served: dict[str, ServedModel] = {}
    with Triton(config=config, workspace=str(args.workspace)) as triton:
        sync(triton, args.repo, served)
        triton.run()
        LOG.info("serving %s on grpc %d", {n: m.version for n, m in served.items()} or "no models", args.grpc_port)
        print("TRITON_HOST_READY", flush=True)
        while not stop.wait(args.poll_s):
            if not triton.is_alive():
                LOG.error("tritonserver died")
                return 1
            sync(triton, args.repo, served)
        LOG.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
