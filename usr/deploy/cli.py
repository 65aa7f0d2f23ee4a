"""``usr deploy render|init|probe|exporter|kustomize``: the production deployment's tools."""
from __future__ import annotations

import argparse
import json
import sys

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    render = sub.add_parser("render", help="write docker-compose.yml, deploy/base and the monitoring files "
                                           "from deploy/base/usr.yaml")
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    init = sub.add_parser("init", help="wait for Kafka, create topics, apply Feast definitions (idempotent)")
    init.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Kafka and the online store")
    probe = sub.add_parser("probe", help="health probe inside a container (exit 0: healthy)")
    probe.add_argument("target", choices=["gateway", "streams", "retrain", "exporter"])
    probe.add_argument("--port", type=int, help="override the configured port")
    probe.add_argument("--index", type=int, default=0, help="streams: the worker index")
    probe.add_argument("--timeout", type=float, default=3.0)
    exporter = sub.add_parser("exporter", help="Prometheus exporter: consumer lag and feature freshness")
    exporter.add_argument("--port", type=int, default=None, help="default: usr.deploy.render.EXPORTER_PORT")
    exporter.add_argument("--interval", type=float, default=15.0, help="seconds between reads of Kafka")
    exporter.add_argument("--retrain-textfile", action="store_true",
                          help="also serve the metrics `usr retrain` wrote to <registry>/retrain.prom")
    kust = sub.add_parser("kustomize", help="render a kustomization with the built-in renderer (no kustomize needed)")
    kust.add_argument("directory")


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "render":
        from usr.deploy import render

        if args.check:
            stale = render.stale()
            for path in stale:
                print(f"stale: {path}", file=sys.stderr)
            if stale:
                print("usr deploy render --check: run `usr deploy render`", file=sys.stderr)
            return 1 if stale else 0
        for path in render.write():
            print(f"wrote {path}")
        return 0
    if args.action == "init":
        import logging

        from usr.deploy.bootstrap import init

        logging.basicConfig(level=logging.WARNING)
        try:
            print(json.dumps(init(config, args.timeout)), flush=True)
        except TimeoutError as exc:
            print(f"usr deploy init: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.action == "probe":
        from usr.deploy.probe import probe

        ok, detail = probe(config, args.target, port=args.port, index=args.index, timeout_s=args.timeout)
        print(("ok: " if ok else "unhealthy: ") + detail)
        return 0 if ok else 1
    if args.action == "exporter":
        import logging

        from usr.deploy.exporter import serve
        from usr.deploy.render import EXPORTER_PORT

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        return serve(config, args.port or EXPORTER_PORT, args.interval, args.retrain_textfile)
    if args.action == "kustomize":
        from usr.deploy.kustomize import build
        from usr.deploy.render import dump_docs

        sys.stdout.write(dump_docs(build(args.directory)))
        return 0
    return 2
