"""Health probes run inside the containers (docker compose health checks, Kubernetes exec probes).

    usr deploy probe gateway      gRPC health Check on the gateway's port (TLS when configured)
    usr deploy probe streams      the stream worker's /status page (it binds 127.0.0.1 only)
    usr deploy probe retrain      the retrainer's /metrics
    usr deploy probe exporter     the exporter's /metrics

Exit status 0 when healthy, 1 otherwise, with one line saying why. Every address and
port comes from the configuration ($USR_CONFIG), so the probes follow a port change.
The gateway's health service needs no token (gateway/auth.py keeps it open).
"""
from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

from usr.config import Config

LOCAL = "127.0.0.1"


def _local(host: str) -> str:
    """Where a process inside the same container answers: wildcard binds -> loopback."""
    return LOCAL if host in ("0.0.0.0", "::", "", "[::]") else host


def certificate_names(cert: Path) -> list[str]:
    """DNS names and IP addresses of a PEM certificate (subjectAltName, else the CN)."""
    decoded = ssl._ssl._test_decode_cert(str(cert))  # noqa: SLF001 - the stdlib's own PEM decoder
    names = [value for kind, value in decoded.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not names:
        names = [value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names


def gateway(config: Config, timeout_s: float = 3.0) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    g = config.gateway
    address = f"{_local(g.host)}:{g.port}"
    if g.tls_cert and g.tls_key:
        ca = g.tls_cert.with_name("ca.crt")
        root = (ca if ca.is_file() else g.tls_cert).read_bytes()
        names = certificate_names(g.tls_cert)
        options = [("grpc.ssl_target_name_override", names[0])] if names else []
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root), options=options)
    else:
        channel = grpc.insecure_channel(address)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.RpcError as exc:
        return False, f"{address}: {exc.code().name}: {exc.details()}"
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def http_ok(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 - loopback only
            return 200 <= reply.status < 300, f"{url}: HTTP {reply.status}"
    except Exception as exc:  # noqa: BLE001 - refused, timeout, HTTP error ...
        return False, f"{url}: {type(exc).__name__}: {exc}"


def probe(config: Config, target: str, port: int | None = None, index: int = 0,
          timeout_s: float = 3.0) -> tuple[bool, str]:
    if target == "gateway":
        return gateway(config, timeout_s)
    if target == "streams":
        return http_ok(f"http://{LOCAL}:{port or config.streams.web_port_base + index}/status", timeout_s)
    if target == "retrain":
        return http_ok(f"http://{LOCAL}:{port or config.retrain.metrics_port}/metrics", timeout_s)
    if target == "exporter":
        from usr.deploy.render import EXPORTER_PORT

        return http_ok(f"http://{LOCAL}:{port or EXPORTER_PORT}/metrics", timeout_s)
    raise ValueError(f"unknown probe target {target!r}")
