"""``usr load``: turn a real log into an impression table (Parquet, IMPRESSION_SCHEMA).

    usr load jdsearch   BEHAVIOUR.txt [--meta PRODUCT_META.txt] --out FILE.parquet
    usr load aliexpress TRAIN.csv [TEST.csv ...] [--country us]  --out FILE.parquet
    usr load kuaisar    DIR                                       --out FILE.parquet
    usr load generic    LOG.csv|LOG.parquet [--tz-offset-hours H] --out FILE.parquet

Prints a JSON summary (rows, requests, users, items, CTR/CVR per scenario).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from usr.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("jdsearch", "aliexpress", "kuaisar", "generic"))
    parser.add_argument("inputs", nargs="+", help="input file(s) or directory (kuaisar)")
    parser.add_argument("--out", required=True, help="output Parquet file")
    parser.add_argument("--meta", help="jdsearch: product meta TSV")
    parser.add_argument("--cate2-level", type=int, default=3, help="jdsearch: category level used as cate2 (default 3)")
    parser.add_argument("--country", default="xx", help="aliexpress: country code kept in request ids")
    parser.add_argument("--tz-offset-hours", type=float, default=0.0, help="generic: local time offset for day/hour")


def summarize(table) -> dict:
    df = table.select(["request_id", "user_id", "item_id", "scenario", "click", "order", "global_click"]).to_pandas()
    out = {"rows": len(df), "requests": int(df.request_id.nunique()), "users": int(df.user_id.nunique()),
           "items": int(df.item_id.nunique()), "scenarios": {}}
    for scen, g in df.groupby("scenario"):
        clicks = int(g.click.sum())
        out["scenarios"][scen] = {"rows": len(g), "ctr": float(g.click.mean()),
                                  "cvr": float(g.order.sum() / clicks) if clicks else None,
                                  "global_ctr": float(g.global_click.mean())}
    return out


def run(args: argparse.Namespace, config: Config) -> int:
    del config
    import pyarrow.parquet as pq

    from usr.data import loaders

    try:
        if args.format == "jdsearch":
            table = loaders.load_jdsearch(args.inputs[0], args.meta, cate2_level=args.cate2_level)
        elif args.format == "aliexpress":
            table = loaders.load_aliexpress(args.inputs, country=args.country)
        elif args.format == "kuaisar":
            table = loaders.load_kuaisar(args.inputs[0])
        else:
            table = loaders.load_generic(args.inputs[0], tz_offset_hours=args.tz_offset_hours)
    except (OSError, ValueError, KeyError) as exc:
        print(f"usr load: {exc}")
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    print(json.dumps({"out": str(out), **summarize(table)}, indent=2))
    return 0
