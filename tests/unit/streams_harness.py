"""An in-memory run of the stream's states over a log (no Kafka): messages per
topic-partition in log order, read in a random interleaving and random batch sizes,
with optional crash-and-restore from checkpoints. Used by the unit tests."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from streams.catalog import Catalog
from streams.checkpoint import Checkpoint, checkpoint_path
from streams.item_state import ItemStatsState, Smoothing, encode_records
from streams.offline import KIND, kafka_partition
from streams.state import END_OF_LOG_TS, PartitionState, StateConfig
from usr.data.events import encode_event

NOW_MS = 4_000_000_000_000


def messages_of(log: pd.DataFrame, partitions: int) -> dict[tuple[int, int], list[bytes]]:
    """Wire messages per (kind, partition) in log order."""
    out: dict[tuple[int, int], list[bytes]] = {(k, p): [] for k in range(3) for p in range(partitions)}
    parts = kafka_partition(log["user_id"].to_numpy(), partitions)
    for row, p in zip(log.to_dict("records"), parts.tolist()):
        d = {k: row[k] for k in ("schema_version", "event_type", "event_id", "request_id", "user_id", "item_id",
                                 "scenario", "position", "ts")}
        if row["scenario"] == "search":
            d["query"] = row["query"]
        out[(KIND[row["event_type"]], p)].append(encode_event(d))
    return out


def close_log(msgs: dict[tuple[int, int], list[bytes]]) -> None:
    for key in msgs:
        msgs[key].append(b'{"control":"watermark","ts":%d}' % END_OF_LOG_TS)


class MemoryRun:
    """Stage 1 and stage 2 states of every partition and an in-memory 'online store'."""

    def __init__(self, cfg: StateConfig, catalog: Catalog, partitions: int, ck_dir: Path | None = None,
                 smoothing: Smoothing = Smoothing()) -> None:
        self.cfg, self.catalog, self.partitions, self.ck_dir = cfg, catalog, partitions, ck_dir
        self.smoothing = smoothing
        self.s1: dict[int, PartitionState] = {}
        self.s2: dict[int, ItemStatsState] = {}
        self.ck1: dict[int, Checkpoint] = {}
        self.ck2: dict[int, Checkpoint] = {}
        self.internal: dict[int, list[bytes]] = {p: [] for p in range(partitions)}   # the internal topic
        self.users: dict[int, dict[str, Any]] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.query_items: dict[tuple[str, int], dict[str, Any]] = {}
        self.row_files: dict[tuple[int, int], pa.Table] = {}
        self.dead: list[Any] = []
        self.generation = 0
        self.load()

    def load(self) -> None:
        """(Re)create the states, from the checkpoints when there are any."""
        self.generation += 1
        token = f"w{self.generation}"
        for p in range(self.partitions):
            self.s1[p] = PartitionState(p, self.cfg, self.catalog)
            self.s2[p] = ItemStatsState(p, self.smoothing)
            if self.ck_dir is not None:
                for ck in (self.ck1.get(p), self.ck2.get(p)):
                    if ck is not None:
                        ck.close()
                self.ck1[p] = Checkpoint(checkpoint_path(self.ck_dir, 1, p), token)
                self.ck2[p] = Checkpoint(checkpoint_path(self.ck_dir, 2, p), token)
                self.ck1[p].load_stage1(self.s1[p])
                self.ck2[p].load_stage2(self.s2[p])

    def step1(self, p: int, batch: list[tuple[int, int, bytes]], commit: bool = True) -> None:
        st = self.s1[p]
        for kind, offset, raw in batch:
            st.apply(kind, offset, raw, NOW_MS)
        st.advance()
        for dl in st.dead_letters:
            self.dead.append((p, dl))
        by_target: dict[int, list] = {}
        for rec in st.item_records:
            by_target.setdefault(rec[2] % self.partitions, []).append(rec)
        for t, recs in sorted(by_target.items()):
            self.internal[t].append(encode_records(p, recs))
        for bucket, table in st.finished_rows:
            self.row_files[(bucket, p)] = table
        cols = st.user_features(sorted(st.dirty_users | st.dirty_history))
        for j, uid in enumerate(cols["user_id"]):
            self.users[uid] = {k: v[j] for k, v in cols.items() if k != "user_id"}
        if commit and self.ck_dir is not None:
            self.ck1[p].commit_stage1(st)
        if commit:
            st.reset_outputs()

    def step2(self, p: int, upto: int | None = None, commit: bool = True) -> None:
        st = self.s2[p]
        msgs = self.internal[p]
        end = len(msgs) if upto is None else min(upto, len(msgs))
        for off in range(st.next_offset, end):
            st.apply(off, msgs[off])
        cols = st.item_features(sorted(st.dirty_items))
        for j, item in enumerate(cols["item_id"]):
            self.items[item] = {k: v[j] for k, v in cols.items() if k != "item_id"}
        qcols = st.query_item_features(sorted(st.dirty_query_items))
        for j, key in enumerate(zip(qcols["query"], qcols["item_id"])):
            self.query_items[key] = {k: v[j] for k, v in qcols.items() if k not in ("query", "item_id")}
        if commit and self.ck_dir is not None:
            self.ck2[p].commit_stage2(st)
        if commit:
            st.reset_outputs()

    def run(self, msgs: dict[tuple[int, int], list[bytes]], seed: int, max_batch: int = 50,
            crash_every: int | None = None) -> None:
        """Consume everything in a random interleaving; with ``crash_every``, drop the
        in-memory states every so many steps (sometimes after writing outputs but before
        the checkpoint) and restore them from the checkpoints."""
        rng = random.Random(seed)
        pos = {k: 0 for k in msgs}
        steps = 0
        while True:
            for p in range(self.partitions):   # resume from the checkpointed offsets
                for k in range(3):
                    pos[(k, p)] = max(pos[(k, p)], 0)
            live = [k for k in msgs if self.s1[k[1]].next_offset[k[0]] < len(msgs[k])]
            if not live and all(self.s2[p].next_offset >= len(self.internal[p]) for p in range(self.partitions)):
                break
            steps += 1
            crash = crash_every is not None and steps % crash_every == 0
            if live and rng.random() < 0.8:
                p = rng.choice(live)[1]
                batch = []
                for k in range(3):   # a few messages of each topic of the partition, each in order
                    start = self.s1[p].next_offset[k]
                    n = rng.randint(0, max_batch)
                    batch.extend((k, off, msgs[(k, p)][off]) for off in range(start, min(start + n, len(msgs[(k, p)]))))
                rng.shuffle(batch)
                batch.sort(key=lambda m: (m[0], m[1])) if rng.random() < 0.2 else None
                # keep each topic's messages in offset order, interleave topics randomly
                per_kind = {k: [m for m in batch if m[0] == k] for k in range(3)}
                for k in per_kind:
                    per_kind[k].sort(key=lambda m: m[1])
                merged = []
                while any(per_kind.values()):
                    k = rng.choice([k for k in per_kind if per_kind[k]])
                    merged.append(per_kind[k].pop(0))
                self.step1(p, merged, commit=not crash)
            else:
                p = rng.randrange(self.partitions)
                self.step2(p, upto=self.s2[p].next_offset + rng.randint(1, 5), commit=not crash)
            if crash:
                self.load()


def simulate_small(out_dir: Path, users: int = 300, items: int = 600, days: int = 2, seed: int = 5) -> Path:
    """A small simulator output directory (a couple of seconds)."""
    from usr.data.sim.config import SimConfig
    from usr.data.sim.run import simulate

    if not (out_dir / "events.parquet").exists():
        simulate(SimConfig().replace(n_users=users, n_items=items, days=days, seed=seed), out_dir, progress=False)
    return out_dir


def perturb(log: pd.DataFrame, cfg: StateConfig, seed: int = 0) -> pd.DataFrame:
    """The log as a faulty producer would publish it: some events re-sent, some moved
    later by less than the lateness bound (out of order), some stale copies far behind
    (late), and orders for requests nobody clicked."""
    rng = np.random.default_rng(seed)
    df = log.reset_index(drop=True).copy()
    n = len(df)
    key = df["ts"].to_numpy().astype(np.float64)
    # out of order: publish 5% of the events up to lateness/2 later than their time
    moved = rng.random(n) < 0.05
    key[moved] += rng.uniform(0, cfg.lateness_ms / 2, moved.sum())
    df["_key"] = key
    # duplicates: 3% re-sent up to a minute later
    dup = df[rng.random(n) < 0.03].copy()
    dup["_key"] = dup["_key"] + rng.uniform(0, 60_000, len(dup))
    # late: stale copies of 1% of the impressions with a new id, stamped an hour before
    late = df[(df["event_type"] == "impression") & (rng.random(n) < 0.01)].copy()
    late["event_id"] = late["event_id"] + "-stale"
    late["ts"] = late["ts"] - 3_600_000
    # orders without a click
    orphans = df[df["event_type"] == "impression"].sample(5, random_state=seed).copy()
    orphans["event_type"] = "order"
    orphans["event_id"] = orphans["event_id"] + "-orphan"
    orphans["ts"] = orphans["ts"] + 1000
    orphans["_key"] = orphans["ts"].astype(np.float64)
    out = pd.concat([df, dup, late, orphans], ignore_index=True)
    return out.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


def rows_of(run: MemoryRun) -> pa.Table:
    from usr.data.tables import IMPRESSION_SCHEMA

    if not run.row_files:
        return IMPRESSION_SCHEMA.empty_table()
    return pa.concat_tables(list(run.row_files.values())).sort_by([("ts", "ascending"), ("event_id", "ascending")])


def assert_same_rows(got: pa.Table, want: pa.Table) -> None:
    """Equal row for row (p_click / p_ctcvr compared as NaN-or-equal)."""
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    assert got.num_rows == want.num_rows, (got.num_rows, want.num_rows)
    for name in got.column_names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        if name in ("p_click", "p_ctcvr"):
            a = [None if x != x else x for x in a]
            b = [None if x != x else x for x in b]
        if a != b:
            bad = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            raise AssertionError(f"column {name} differs at row {bad} ({got.column('event_id')[bad]}): "
                                 f"{a[bad]!r} != {b[bad]!r}; {sum(x != y for x, y in zip(a, b))} rows differ")


def assert_same_features(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), f"{what}: {len(set(got) ^ set(want))} keys differ, e.g. {sorted(set(got) ^ set(want))[:3]}"
    for key, f in want.items():
        g = got[key]
        bad = {k: (g.get(k), v) for k, v in f.items() if g.get(k) != v and not (isinstance(v, float) and abs(g.get(k) - v) < 1e-6)}
        assert not bad, f"{what} {key}: {bad}"
