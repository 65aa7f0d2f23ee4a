"""The gateway as a service of the local stack (``usr stack up`` starts it last)."""
from __future__ import annotations

import sys

import yaml

from usr.config import Config
from usr.stack import process
from usr.stack.process import RunPaths
from usr.stack.services import Health, Service


def health_check(config: Config, timeout_s: float = 2.0) -> Health:
    """gRPC health check, over TLS when the gateway is configured with a certificate."""
    from usr.deploy.probe import gateway as probe_gateway

    if not process.port_open(config.gateway.host, config.gateway.port):
        return Health(False, f"{config.gateway.host}:{config.gateway.port}: connection refused")
    ok, detail = probe_gateway(config, timeout_s)
    return Health(ok, detail)


def services(config: Config) -> list[Service]:
    if not config.gateway.enabled:
        return []

    def start(paths: RunPaths) -> int:
        # the child reads exactly the configuration this process validated
        effective = config.run.dir / "gateway-config.yaml"
        effective.write_text(yaml.safe_dump(config.dump(), sort_keys=False))
        return process.spawn(paths, "gateway", [sys.executable, "-m", "gateway.server", "--config", str(effective)])

    return [Service(name="gateway", mode="local", ports=[config.gateway.port, config.gateway.metrics_port],
                    managed=True, check=lambda: health_check(config), start=start)]
