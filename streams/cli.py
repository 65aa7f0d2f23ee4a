"""``usr streams``: the stream jobs' everyday commands.

    usr streams load-catalog DIR [--no-online]   item/user catalog + query dictionary for the workers
    usr streams publish DIR [--no-close]         publish an event log, then end-of-log markers
    usr streams watermark [--ts MS]              watermark every event-topic partition (default: end of log)
    usr streams status [--json]                  the workers' progress (their /status pages)
    usr streams offline DIR --out OUT            the batch reference: labelled rows + final features
    usr streams worker [--index I]               run one worker in the foreground

``usr stack up`` starts ``streams.workers`` workers itself; ``usr stack status`` shows them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    p = sub.add_parser("load-catalog", help="install the catalog for the workers and the online store")
    p.add_argument("source", help="simulator output directory, or a directory with items.parquet ...")
    p.add_argument("--no-online", action="store_true")
    p = sub.add_parser("publish", help="publish an event log (usr replay) and end-of-log markers")
    p.add_argument("source")
    p.add_argument("--no-close", action="store_true", help="leave the log open (no end-of-log markers)")
    p = sub.add_parser("watermark", help="send a watermark to every event-topic partition")
    p.add_argument("--ts", type=int, help="event time in ms (default: end of log)")
    p = sub.add_parser("status", help="the workers' progress")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("offline", help="compute the stream's outputs in batch from a log")
    p.add_argument("source", help="simulator directory or events.parquet")
    p.add_argument("--out", required=True)
    p = sub.add_parser("worker", help="run one worker in the foreground")
    p.add_argument("--index", type=int, default=0)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "load-catalog":
        from streams.catalog import install

        print(json.dumps(install(config, args.source, online=not args.no_online), indent=2))
        return 0
    if args.action == "publish":
        from streams.publish import publish_log

        print(json.dumps(publish_log(config, args.source, close=not args.no_close, progress=True), indent=2))
        return 0
    if args.action == "watermark":
        from streams.publish import send_watermarks
        from streams.state import END_OF_LOG_TS

        print(json.dumps({"watermarks": send_watermarks(config, args.ts if args.ts is not None else END_OF_LOG_TS)}))
        return 0
    if args.action == "status":
        from streams.progress import worker_status

        out = {f"streams-{i}": worker_status(config.streams.web_port_base + i) for i in range(config.streams.workers)}
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            for name, st in out.items():
                if st is None:
                    print(f"{name}: not answering")
                    continue
                print(f"{name}: {st['driver']} driver, {st['events']} events ({st['events_per_s']}/s), "
                      f"partitions {sorted(int(p) for p in st['stage1'])}, catalog {st['catalog']}")
        return 0 if all(out.values()) else 1
    if args.action == "offline":
        import pyarrow.parquet as pq

        from streams import offline
        from streams.catalog import load_installed
        from streams.item_state import Smoothing
        from streams.state import StateConfig
        from usr.data.replay import events_file

        res = offline.compute(pq.read_table(events_file(args.source)), load_installed(config),
                              StateConfig.from_streams(config.streams), config.kafka.topics.partitions,
                              Smoothing.from_streams(config.streams))
        out = Path(args.out)
        (out / "impressions").mkdir(parents=True, exist_ok=True)
        pq.write_table(res.rows, out / "impressions" / "part-0.parquet", compression="zstd")
        (out / "features.json").write_text(json.dumps({
            "users": {str(k): v for k, v in res.users.items()},
            "items": {str(k): v for k, v in res.items.items()},
            "query_items": {f"{q}\t{i}": v for (q, i), v in res.query_items.items()}}))
        print(json.dumps({"rows": res.rows.num_rows, "users": len(res.users), "items": len(res.items),
                          "rejected": int(len(res.rejected)), "out": str(out)}))
        return 0
    if args.action == "worker":
        from streams.service import effective_config_file
        from streams.worker import main as worker_main

        return worker_main(["--index", str(args.index), "--config", str(effective_config_file(config))])
    return 2
