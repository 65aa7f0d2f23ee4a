"""Labelled rows into the offline store: Parquet files partitioned by event time.

One file per (rows bucket of event time, source partition):
``<offline>/impressions/<YYYYMMDDTHHMMSS>-p<partition>.parquet`` (flat, so the trainer's
``DIR/impressions/*.parquet`` reader takes them; names sort by time). A bucket's file
holds every accepted impression of that partition in that bucket, written once the
watermark has passed the bucket's attribution windows, so its content is a function
of the log: a rewrite after a replay or a restart writes the same file again
(atomically: temporary file, then rename).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq

import pyarrow as pa


def rows_dir(offline_root: Path) -> Path:
    return offline_root / "impressions"


def bucket_file(offline_root: Path, bucket: int, bucket_ms: int, partition: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(bucket * bucket_ms / 1000.0))
    return rows_dir(offline_root) / f"{stamp}-p{partition:03d}.parquet"


class RowSink:
    """Writes finished row buckets."""

    def __init__(self, offline_root: Path) -> None:
        self.root = offline_root
        rows_dir(offline_root).mkdir(parents=True, exist_ok=True)
        self.files_written = 0
        self.rows_written = 0

    def write(self, partition: int, bucket: int, bucket_ms: int, table: pa.Table) -> Path:
        path = bucket_file(self.root, bucket, bucket_ms, partition)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        self.files_written += 1
        self.rows_written += table.num_rows
        return path


def read_rows(offline_root: Path):
    """All labelled rows written so far, as one table sorted by (ts, event_id)."""
    files = sorted(rows_dir(offline_root).glob("*.parquet"))
    if not files:
        from usr.data.tables import IMPRESSION_SCHEMA

        return IMPRESSION_SCHEMA.empty_table()
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.sort_by([("ts", "ascending"), ("event_id", "ascending")])
