"""The local stack's services: how each starts, answers a health check and stops.

A service is "managed" when the stack starts it (local mode) and "external"
when it only checks that the configured endpoint answers.
"""
from __future__ import annotations

import shutil
import signal
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from usr.config import PROJECT_ROOT, Config
from usr.stack import process
from usr.stack.process import RunPaths

TRITON_PYTHON = PROJECT_ROOT / ".venv-triton" / "bin" / "python"


@dataclass
class Health:
    ok: bool
    detail: str


@dataclass
class Service:
    name: str
    mode: str                       # what runs: apache | tansu | local | sqlite | external ...
    ports: list[int]
    managed: bool                   # started and stopped by the stack
    check: Callable[[], Health]
    start: Callable[[RunPaths], int | None] | None = None
    stop_signal: int = signal.SIGTERM
    notes: list[str] = field(default_factory=list)
    prepare: Callable[[], None] | None = None          # after start, before the health wait
    on_healthy: Callable[[], str | None] | None = None  # once healthy; returns a line to log


# ---------------------------------------------------------------- kafka

def _kafka(config: Config) -> Service:
    from usr.stack.kafka_broker import resolve_mode, start_apache, start_tansu
    from usr.kafka_client import broker_answers

    mode, why = resolve_mode(config.kafka)
    k = config.kafka

    def check() -> Health:
        host, _, port = k.bootstrap.split(",")[0].rpartition(":")
        if not process.port_open(host, int(port)):
            return Health(False, f"{k.bootstrap}: connection refused")
        ok, detail = broker_answers(k)
        return Health(ok, f"{k.bootstrap}: {detail}")

    def create_topics() -> str | None:
        from usr.kafka_client import ensure_topics

        created = ensure_topics(k)
        return f"created topics {created}" if created else None

    starter = {"apache": start_apache, "tansu": start_tansu}.get(mode)
    return Service(
        name="kafka", mode=mode,
        ports=[k.port, k.controller_port] if mode == "apache" else ([k.port] if mode == "tansu" else []),
        managed=mode != "external", check=check,
        start=(lambda paths: starter(config, paths, "kafka")) if starter else None,
        notes=[why] if why else [], on_healthy=create_topics,
    )


# ---------------------------------------------------------------- redis

def _redis(config: Config) -> Service | None:
    if config.feast.online_store != "redis":
        return None
    r = config.redis

    def check() -> Health:
        import os

        import redis as redis_lib

        password = os.environ.get(r.password_env) if r.password_env else None
        client = redis_lib.Redis(host=r.host, port=r.port, password=password, socket_timeout=1.0)
        try:
            return Health(bool(client.ping()), f"{r.host}:{r.port} PONG")
        except Exception as exc:  # noqa: BLE001
            return Health(False, f"{r.host}:{r.port}: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def start(paths: RunPaths) -> int:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server not found: run scripts/setup.sh (installs Debian's redis-server)")
        data = config.run.dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        return process.spawn(paths, "redis", [server, "--port", str(r.port), "--bind", r.host,
                                              "--dir", str(data), "--save", "", "--appendonly", "no"])

    return Service(name="redis", mode=r.mode, ports=[r.port] if r.mode == "local" else [],
                   managed=r.mode == "local", check=check, start=start if r.mode == "local" else None)


# ---------------------------------------------------------------- feast

def _feast(config: Config) -> Service:
    def check() -> Health:
        from features.store import open_store, probe_roundtrip

        try:
            ok, detail = probe_roundtrip(open_store(config))
        except Exception as exc:  # noqa: BLE001 - not applied yet, store unreachable, ...
            return Health(False, f"{config.feast.online_store} online store: {type(exc).__name__}: {exc}")
        return Health(ok, f"{config.feast.online_store} online store: {detail}")

    def apply() -> None:
        from features.store import apply_definitions

        apply_definitions(config)

    return Service(name="feast", mode=config.feast.online_store, ports=[], managed=False, check=check, prepare=apply)


# ---------------------------------------------------------------- triton

def triton_env() -> dict[str, str]:
    """pytriton's stub needs the interpreter's own libpython on LD_LIBRARY_PATH."""
    import subprocess

    libdir = subprocess.run(
        [str(TRITON_PYTHON), "-c", "import sysconfig;print(sysconfig.get_config_var('LIBDIR'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip() or sysconfig.get_config_var("LIBDIR")
    return {"LD_LIBRARY_PATH": libdir, "PYTHONUNBUFFERED": "1"}


def triton_workspace(config: Config) -> Path:
    """pytriton's IPC sockets live in its workspace and AF_UNIX paths are limited to 107
    bytes, so the workspace is a short path in the temp dir, one per run directory."""
    import hashlib
    import tempfile

    digest = hashlib.sha1(str(config.run.dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"usr-triton-{digest}"


def _model_ready(client, name: str) -> bool:
    try:
        return bool(client.is_model_ready(name, client_timeout=2.0))
    except Exception:  # noqa: BLE001 - unknown model
        return False


def _triton(config: Config) -> Service:
    t = config.triton

    def check() -> Health:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(t.grpc_url)
        try:
            if not (client.is_server_live(client_timeout=2.0) and client.is_server_ready(client_timeout=2.0)):
                return Health(False, f"{t.grpc_url}: not ready")
            # (pytriton guards the repository-index endpoint with a token, so ask per model)
            served = sorted(sig.parent.name for sig in t.model_repository.glob("*/signature.json"))
            ready = [m for m in served if _model_ready(client, m)]
            missing = sorted(set(served) - set(ready))
            if missing:
                return Health(False, f"{t.grpc_url}: models not loaded yet: {missing}")
            return Health(True, f"{t.grpc_url}: ready, models {ready or 'none'}")
        except Exception as exc:  # noqa: BLE001
            return Health(False, f"{t.grpc_url}: {type(exc).__name__}: {str(exc)[:120]}")
        finally:
            client.close()

    def start(paths: RunPaths) -> int:
        if not TRITON_PYTHON.exists():
            raise RuntimeError(f"{TRITON_PYTHON} missing: run scripts/setup.sh (builds the Triton environment)")
        t.model_repository.mkdir(parents=True, exist_ok=True)
        argv = [str(TRITON_PYTHON), str(Path(__file__).with_name("triton_host.py")),
                "--repo", str(t.model_repository), "--grpc-port", str(t.grpc_port),
                "--http-port", str(t.http_port), "--metrics-port", str(t.metrics_port),
                "--workspace", str(triton_workspace(config)), "--threads", str(t.threads)]
        return process.spawn(paths, "triton", argv, env=triton_env())

    return Service(name="triton", mode=t.mode,
                   ports=[t.grpc_port, t.http_port, t.metrics_port] if t.mode == "local" else [],
                   managed=t.mode == "local", check=check, start=start if t.mode == "local" else None,
                   stop_signal=signal.SIGINT)


def _optional(module_name: str, config: Config) -> list[Service]:
    """Services contributed by a part of the project (streams/, gateway/): ``<module>.services(config)``."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return []
        raise
    return list(module.services(config))


def services(config: Config) -> list[Service]:
    """The stack in start order (stop order is the reverse)."""
    found = [_kafka(config), _redis(config), _feast(config), _triton(config),
             *_optional("streams.service", config), *_optional("gateway.service", config)]
    return [s for s in found if s is not None]

