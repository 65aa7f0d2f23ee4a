"""Shared fixtures: a real local stack (Apache Kafka, Feast online store, Triton) on
free ports in a temporary run directory, started once per test session."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from usr.config import Config, load_config


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def stack_config(run_dir: Path, **extra: str) -> Config:
    """A config with its own run dir and free ports; ``extra``: USR__... overrides."""
    k, kc, r, tg, th, tm, gp, gm, sw = free_ports(9)
    env = {
        "USR__RUN__DIR": str(run_dir),
        "USR__RUN__CACHE_DIR": str(Path(__file__).resolve().parent.parent / ".cache"),
        "USR__KAFKA__PORT": str(k), "USR__KAFKA__CONTROLLER_PORT": str(kc),
        "USR__REDIS__PORT": str(r),
        "USR__TRITON__GRPC_PORT": str(tg), "USR__TRITON__HTTP_PORT": str(th), "USR__TRITON__METRICS_PORT": str(tm),
        "USR__TRITON__MODEL_REPOSITORY": str(run_dir / "triton_repo"),
        "USR__GATEWAY__PORT": str(gp), "USR__GATEWAY__METRICS_PORT": str(gm),
        "USR__STREAMS__WEB_PORT_BASE": str(sw),
        **extra,
    }
    return load_config(environ=env)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The whole local stack, up and healthy; a tiny model is in Triton's repository."""
    from usr.stack import manager
    from usr.stack.tiny_model import write_tiny_model

    run_dir = tmp_path_factory.mktemp("stack")
    config = stack_config(run_dir)
    write_tiny_model(config.triton.model_repository)
    try:
        manager.up(config)
        yield config
    finally:
        manager.down(config)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Config) -> str:
    return stack.kafka.bootstrap
