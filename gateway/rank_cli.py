"""``usr rank --user U --scenario search|rec [--query Q] --candidates 1 2 3``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", type=int, required=True)
    parser.add_argument("--scenario", choices=["search", "rec"], required=True)
    parser.add_argument("--query", default="")
    parser.add_argument("--candidates", type=int, nargs="+", required=True)
    parser.add_argument("--address", help="host:port (default: the configured gateway)")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--token-env", help="env var holding the bearer token (default: gateway.auth_token_env)")
    parser.add_argument("--root-cert", type=Path, help="CA certificate for a TLS gateway (default: gateway.tls_cert)")


def run(args: argparse.Namespace, config: Config) -> int:
    import grpc

    from gateway.client import RankingClient

    import os

    address = args.address or f"{config.gateway.host}:{config.gateway.port}"
    token_env = args.token_env or config.gateway.auth_token_env
    token = os.environ.get(token_env, "").split(",")[0] or None if token_env else None
    root = args.root_cert or config.gateway.tls_cert
    with RankingClient(address, timeout_s=args.timeout, token=token,
                       root_cert=root.read_bytes() if root else None) as client:
        try:
            reply = client.rank(args.user, args.scenario, args.candidates, query=args.query)
        except grpc.RpcError as exc:
            print(f"usr rank: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(json.dumps({
        "request_id": reply.request_id, "model_version": reply.model_version, "fallback": reply.fallback,
        "fallback_reason": reply.fallback_reason, "objective": reply.objective,
        "items": [{"item_id": i.item_id, "ctr": round(i.ctr, 6), "ctcvr": round(i.ctcvr, 6),
                   "score": round(i.score, 6)} for i in reply.items],
    }, indent=2))
    return 0
