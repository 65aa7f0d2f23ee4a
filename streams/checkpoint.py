"""Durable checkpoints of the partition states, committed atomically with the input
offsets they include (one SQLite file per stage and partition).

A worker applies a batch, writes its outputs (dead letters, item records, rows, online
features), then commits the state changes of the batch in one transaction: the
state and the offsets it has consumed never disagree. After a crash the next owner
loads the last checkpoint and re-reads from its offsets; outputs written after that
checkpoint are written again with the same content (idempotent), so nothing is lost
and nothing counted twice.

Ownership: the worker that loads a partition writes its token into the file; a commit
by anyone else (a worker that lost the partition in a rebalance) fails with
:class:`LostOwnership` instead of overwriting the new owner's state.

Files live under ``<run>/streams/state/<app_id>/`` (a shared volume when workers run
on several hosts).
"""
from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path
from typing import Any

from streams.item_state import ItemStatsState
from streams.state import PartitionState


class LostOwnership(RuntimeError):
    """Another worker claimed the partition since this one loaded it."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending (event_id TEXT PRIMARY KEY, bucket INTEGER NOT NULL, blob BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS pending_bucket ON pending(bucket);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_ts ON seen(ts);
CREATE TABLE IF NOT EXISTS items (item_id INTEGER PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS query_items (query TEXT NOT NULL, item_id INTEGER NOT NULL, blob BLOB NOT NULL,
                                        PRIMARY KEY (query, item_id));
"""


class Checkpoint:
    """The checkpoint file of one (stage, partition)."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self.token = token
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ ownership
    def claim(self) -> dict[str, Any] | None:
        """Become the owner; return the stored meta (None for a fresh partition)."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT INTO meta(key, value) VALUES('owner', ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (self.token,))
            row = c.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return json.loads(row[0]) if row else None

    def _begin_owned(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        row = c.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
        if row is None or row[0] != self.token:
            c.execute("ROLLBACK")
            raise LostOwnership(f"{self.path.name} is owned by {row[0] if row else 'nobody'}")

    def _put_meta(self, meta: dict[str, Any]) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES('state', ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(meta),))

    # ------------------------------------------------------------------ stage 1
    def load_stage1(self, state: PartitionState) -> bool:
        """Restore ``state`` from the file (claiming it); False if there was nothing."""
        meta = self.claim()
        if meta is None:
            return False
        c = self.conn
        users = {uid: pickle.loads(blob) for uid, blob in c.execute("SELECT user_id, blob FROM users")}
        pending = [pickle.loads(blob) for (blob,) in c.execute("SELECT blob FROM pending")]
        seen = list(c.execute("SELECT event_id, ts FROM seen"))
        state.restore(meta, users, pending, seen)
        return True

    def commit_stage1(self, state: PartitionState) -> None:
        """Persist the changes since the last commit, with the offsets, in one transaction."""
        c = self.conn
        self._begin_owned()
        try:
            upserts, deletes = [], []
            for uid in state.ck_users:
                user = state.users.get(uid)
                if user is None:
                    deletes.append((uid,))
                else:
                    upserts.append((uid, pickle.dumps(user.to_tuple(), protocol=pickle.HIGHEST_PROTOCOL)))
            c.executemany("INSERT INTO users(user_id, blob) VALUES(?, ?) "
                          "ON CONFLICT(user_id) DO UPDATE SET blob = excluded.blob", upserts)
            c.executemany("DELETE FROM users WHERE user_id = ?", deletes)
            bms = state.cfg.rows_bucket_ms
            done = set(state.ck_done_buckets)
            c.executemany("INSERT OR REPLACE INTO pending(event_id, bucket, blob) VALUES(?, ?, ?)",
                          [(imp[1], imp[0] // bms, pickle.dumps(imp, protocol=pickle.HIGHEST_PROTOCOL))
                           for imp in state.ck_new_pending if imp[0] // bms not in done])
            c.executemany("DELETE FROM pending WHERE bucket = ?", [(b,) for b in done])
            c.executemany("INSERT OR REPLACE INTO seen(event_id, ts) VALUES(?, ?)", state.ck_new_seen)
            if state.ck_seen_below is not None:
                c.execute("DELETE FROM seen WHERE ts < ?", (state.ck_seen_below,))
            self._put_meta(state.meta())
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ stage 2
    def load_stage2(self, state: ItemStatsState) -> bool:
        meta = self.claim()
        if meta is None:
            return False
        c = self.conn
        items = {iid: json.loads(blob) for iid, blob in c.execute("SELECT item_id, blob FROM items")}
        qitems = {(q, iid): json.loads(blob) for q, iid, blob in c.execute("SELECT query, item_id, blob FROM query_items")}
        state.restore(meta, items, qitems)
        return True

    def commit_stage2(self, state: ItemStatsState) -> None:
        c = self.conn
        self._begin_owned()
        try:
            c.executemany("INSERT OR REPLACE INTO items(item_id, blob) VALUES(?, ?)",
                          [(i, json.dumps(state.items[i])) for i in state.dirty_items])
            c.executemany("INSERT OR REPLACE INTO query_items(query, item_id, blob) VALUES(?, ?, ?)",
                          [(q, i, json.dumps(state.query_items[(q, i)])) for q, i in state.dirty_query_items])
            self._put_meta(state.meta())
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise


def checkpoint_path(state_dir: Path, stage: int, partition: int) -> Path:
    return state_dir / f"stage{stage}-p{partition:03d}.sqlite"
