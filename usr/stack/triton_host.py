"""Local Triton server: a real tritonserver (from nvidia-pytriton) hosting the
TorchScript models of a Triton model repository.

Runs in its own environment (.venv-triton: nvidia-pytriton 0.7.0, numpy<2, torch),
so it imports nothing from the project. The repository layout is the one the
official Triton container reads:

    <repo>/<model>/signature.json      inputs/outputs (name, dtype, shape w/o batch), max_batch_size
    <repo>/<model>/config.pbtxt        for the official container (not read here)
    <repo>/<model>/<version>/model.pt  TorchScript

Every model with a signature is served under its own name and its newest
version, bound at start-up. Stop with SIGINT (clean exit).

Known limit (pytriton 0.7.0): binding a second version of an already-served
model after start-up fails inside pytriton's tensor store and takes the server
down, so ``--poll-s`` (bind newer versions as they appear) is off by default.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

LOG = logging.getLogger("triton_host")
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


def versions_of(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "model.pt").is_file())


def make_infer(module: torch.jit.ScriptModule, input_names: list[str], output_names: list[str]):
    @batch
    def infer(**arrays: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            inputs = {n: torch.from_numpy(np.ascontiguousarray(arrays[n])) for n in input_names}
            result = module(**inputs)
        if isinstance(result, dict):
            outs = [result[n] for n in output_names]
        elif isinstance(result, (tuple, list)):
            outs = list(result)
        else:
            outs = [result]
        return {n: t.detach().numpy().reshape(len(t), -1) if t.dim() == 1 else t.detach().numpy()
                for n, t in zip(output_names, outs)}
    return infer


def bind_version(triton: Triton, model_dir: Path, version: int) -> None:
    sig = json.loads((model_dir / "signature.json").read_text())
    module = torch.jit.load(str(model_dir / str(version) / "model.pt"), map_location="cpu").eval()
    inputs = [Tensor(name=i["name"], dtype=DTYPES[i["dtype"]], shape=tuple(i["shape"])) for i in sig["inputs"]]
    outputs = [Tensor(name=o["name"], dtype=DTYPES[o["dtype"]], shape=tuple(o["shape"])) for o in sig["outputs"]]
    triton.bind(
        model_name=model_dir.name,
        model_version=version,
        infer_func=make_infer(module, [i.name for i in inputs], [o.name for o in outputs]),
        inputs=inputs,
        outputs=outputs,
        config=ModelConfig(max_batch_size=int(sig.get("max_batch_size", 1024)),
                           batcher=DynamicBatcher(max_queue_delay_microseconds=int(sig.get("max_queue_delay_us", 200)))),
        strict=False,
    )
    LOG.info("bound model %s version %d", model_dir.name, version)


def scan(repo: Path) -> dict[str, list[int]]:
    if not repo.is_dir():
        return {}
    return {d.name: versions_of(d) for d in sorted(repo.iterdir())
            if d.is_dir() and (d / "signature.json").is_file() and versions_of(d)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--poll-s", type=float, default=0.0, help="0: do not watch for new versions")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(1)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    config = TritonConfig(grpc_port=args.grpc_port, http_port=args.http_port, metrics_port=args.metrics_port,
                          grpc_address="127.0.0.1", http_address="127.0.0.1", exit_on_error=True)
    if args.workspace.exists():  # pytriton insists on creating the workspace itself
        shutil.rmtree(args.workspace)
    args.workspace.parent.mkdir(parents=True, exist_ok=True)
    bound: dict[str, int] = {}
    with Triton(config=config, workspace=str(args.workspace)) as triton:
        for name, versions in scan(args.repo).items():
            bind_version(triton, args.repo / name, versions[-1])
            bound[name] = versions[-1]
        triton.run()
        LOG.info("serving %s on grpc %d", bound or "no models", args.grpc_port)
        print("TRITON_HOST_READY", flush=True)
        while not stop.wait(args.poll_s or 1.0):
            if not triton.is_alive():
                LOG.error("tritonserver died")
                return 1
            for name, versions in (scan(args.repo).items() if args.poll_s else ()):
                if versions[-1] > bound.get(name, 0):
                    try:
                        bind_version(triton, args.repo / name, versions[-1])
                        bound[name] = versions[-1]
                    except Exception:  # noqa: BLE001 - a bad artifact must not take the server down
                        LOG.exception("could not bind %s version %d", name, versions[-1])
                        bound[name] = versions[-1]
        LOG.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
