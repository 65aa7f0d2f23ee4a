"""Helpers for gateway integration tests: publish a model into the stack's Triton
repository and run the gateway in a background thread on real ports."""
from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from features.spec import FeatureSpec
from tests.conftest import free_ports
from usr.config import Config


def publish_model(repo: Path, name: str = "usr", variant: str = "MMoE+USR", seed: int = 0) -> int:
    import torch

    from model.configs import build_model
    from model.export import script_model
    from model.triton_export import publish

    torch.manual_seed(seed)
    model = build_model(variant, FeatureSpec()).eval()
    return publish(script_model(model), model.spec, repo, name, model_config=model.config.to_dict())


def wait_model_version(config: Config, version: int, timeout_s: float = 60.0) -> None:
    """Wait until Triton answers with ``version`` (the model reports it in an output)."""
    from gateway.scorer import wait_until_repository_version_served

    wait_until_repository_version_served(config, config.triton.model_name, version, timeout_s)


def gateway_config(stack: Config, **gateway_overrides) -> Config:
    port, metrics_port = free_ports(2)
    gw = stack.gateway.model_copy(update={"port": port, "metrics_port": metrics_port, **gateway_overrides})
    return stack.model_copy(update={"gateway": gw})


@contextmanager
def running_gateway(config: Config, service=None, log_impressions: bool = True):
    """The real gRPC gateway on ``config.gateway.port``, in a thread with its own event loop."""
    from gateway.server import serve

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        box["stop"] = stop
        started = asyncio.Event()

        async def main() -> None:
            task = asyncio.create_task(serve(config, service, started, stop, log_impressions))
            await started.wait()
            ready.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in box:
        raise box["error"]
    try:
        yield f"{config.gateway.host}:{config.gateway.port}"
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(30)
