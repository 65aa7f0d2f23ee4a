"""The stream workers as services of the local stack: ``usr stack up`` starts
``streams.workers`` worker processes (``streams-0``, ``streams-1``, ...), which share the
partitions through the consumer group ``streams.app_id``.

Each worker is ``python -m streams.worker --index I --config <run>/streams/config.yaml``
(the effective configuration of the stack, so the child reads exactly what was
validated here); its health check is its ``/status`` page on ``web_port_base + I``.
"""
from __future__ import annotations

import sys

import yaml

from usr.config import Config
from usr.stack import process
from usr.stack.process import RunPaths
from usr.stack.services import Health, Service


def worker_port(config: Config, index: int) -> int:
    return config.streams.web_port_base + index


def health_check(config: Config, index: int) -> Health:
    from streams.progress import worker_status

    port = worker_port(config, index)
    status = worker_status(port)
    if status is None:
        return Health(False, f"127.0.0.1:{port}/status: no answer")
    owned = sorted(int(p) for p in status.get("stage1", {}))
    return Health(True, f"{status['driver']} driver, partitions {owned}, {status['events']} events, "
                        f"catalog {status['catalog']}")


def effective_config_file(config: Config):
    path = config.run.dir / "streams" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.dump(), sort_keys=False))
    return path


def worker_argv(config: Config, index: int) -> list[str]:
    return [sys.executable, "-m", "streams.worker", "--index", str(index), "--config",
            str(effective_config_file(config))]


def services(config: Config) -> list[Service]:
    out = []
    for i in range(config.streams.workers):
        def start(paths: RunPaths, i: int = i) -> int:
            return process.spawn(paths, f"streams-{i}", worker_argv(config, i))

        out.append(Service(name=f"streams-{i}", mode=config.streams.driver, ports=[worker_port(config, i)],
                           managed=True, check=lambda i=i: health_check(config, i), start=start))
    return out
