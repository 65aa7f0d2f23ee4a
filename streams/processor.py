"""One processing step of a worker, independent of how messages are read from Kafka.

A step takes a batch of messages (any mix of the three event topics and the internal
item topic, each topic-partition in offset order) and:

1. applies them to the partition states (stage 1: users, rows; stage 2: item stats);
2. moves the watermarks (rows and order decisions behind them become final);
3. writes the outputs: labelled rows (Parquet), online features (Feast, batched),
   dead letters and re-keyed item records (Kafka, awaited);
4. commits each touched state with its offsets (checkpoint), and returns the offsets
   for the consumer group.

Steps 1-3 run on every batch; online features (step 3b) and checkpoints (step 4) are
flushed every ``flush_interval_s`` (coalescing repeated updates of an entity), and the
offsets returned to the consumer group are the checkpointed ones. Outputs go out before
the checkpoint that covers them, so a crash anywhere repeats work but never loses it;
every output is idempotent, so repeating it changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from streams.catalog import Catalog, load_installed, read_version
from streams.checkpoint import Checkpoint, LostOwnership, checkpoint_path
from streams.dead_letter import dead_letter_message
from streams.item_state import ItemStatsState, Smoothing, encode_records
from streams.state import KINDS, PartitionState, StateConfig
from usr.config import Config

log = logging.getLogger("streams")

Record = tuple[str, int, int, bytes | None]            # (topic, partition, offset, value)
Send = Callable[[str, int | None, bytes | None, bytes], Awaitable[Any]]  # (topic, partition, key, value) -> ack


def internal_topic(config: Config) -> str:
    """The topic that re-keys accepted events by item for stage 2."""
    return f"{config.streams.app_id}-item-events"


def state_dir(config: Config) -> Path:
    return config.run.dir / "streams" / "state" / config.streams.app_id


def stream_topics(config: Config) -> list[str]:
    t = config.kafka.topics
    return [t.impressions, t.clicks, t.orders, internal_topic(config)]


@dataclass
class StepResult:
    messages: list[tuple[str, int | None, bytes | None, bytes]] = field(default_factory=list)
    events: int = 0


class Processor:
    """The partition states a worker owns and the steps that move them."""

    def __init__(self, config: Config, feast_sink: Any, row_sink: Any, worker: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.cfg = StateConfig.from_streams(config.streams)
        self.smoothing = Smoothing.from_streams(config.streams)
        self.feast = feast_sink
        self.rows = row_sink
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        t = config.kafka.topics
        self.kind_of = {t.impressions: 0, t.clicks: 1, t.orders: 2}
        self.topic_of = {0: t.impressions, 1: t.clicks, 2: t.orders}
        self.internal = internal_topic(config)
        self.partitions = t.partitions
        self.dir = state_dir(config)
        self.stage1: dict[int, tuple[PartitionState, Checkpoint]] = {}
        self.stage2: dict[int, tuple[ItemStatsState, Checkpoint]] = {}
        self.catalog: Catalog = load_installed(config)
        self._catalog_checked = self.clock()
        self.stats: Counter[str] = Counter()
        self.timings: Counter[str] = Counter()
        self.started = self.clock()
        self.last_flush = self.last_stats_flush = self.clock()
        self.busy = False
        # wall clock and process CPU time at the first step with messages and the last busy step
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.cpu_first = self.cpu_last = 0.0

    # ------------------------------------------------------------------ ownership
    def _s1(self, p: int) -> PartitionState:
        rt = self.stage1.get(p)
        if rt is None:
            state = PartitionState(p, self.cfg, self.catalog)
            ck = Checkpoint(checkpoint_path(self.dir, 1, p), self.worker)
            ck.load_stage1(state)
            state.catalog = self.catalog
            rt = self.stage1[p] = (state, ck)
            log.info("stage 1 partition %d loaded at offsets %s", p, state.next_offset)
        return rt[0]

    def _s2(self, p: int) -> ItemStatsState:
        rt = self.stage2.get(p)
        if rt is None:
            state = ItemStatsState(p, self.smoothing)
            ck = Checkpoint(checkpoint_path(self.dir, 2, p), self.worker)
            ck.load_stage2(state)
            rt = self.stage2[p] = (state, ck)
            log.info("stage 2 partition %d loaded at offset %d", p, state.next_offset)
        return rt[0]

    def assign(self, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Load the states of newly assigned topic-partitions; return where to read from."""
        out: dict[tuple[str, int], int] = {}
        for topic, p in tps:
            if topic == self.internal:
                out[(topic, p)] = self._s2(p).next_offset
            elif topic in self.kind_of:
                out[(topic, p)] = self._s1(p).next_offset[self.kind_of[topic]]
        return out

    def revoke(self, tps: Iterable[tuple[str, int]]) -> None:
        """Forget revoked partitions (their last checkpoint is the new owner's start)."""
        for topic, p in tps:
            table = self.stage2 if topic == self.internal else self.stage1 if topic in self.kind_of else None
            if table is not None and p in table:
                table.pop(p)[1].close()
                log.info("partition %d of %s revoked", p, "stage 2" if table is self.stage2 else "stage 1")

    def close(self) -> None:
        for table in (self.stage1, self.stage2):
            for _, ck in table.values():
                ck.close()
            table.clear()

    # ------------------------------------------------------------------ catalog
    def _maybe_reload_catalog(self) -> None:
        now = self.clock()
        if now - self._catalog_checked < 5.0:
            return
        self._catalog_checked = now
        version = read_version(self.config)
        if version is not None and version != self.catalog.version:
            self.catalog = load_installed(self.config)
            for state, _ in self.stage1.values():
                state.catalog = self.catalog
            log.info("catalog %s loaded", version)

    # ------------------------------------------------------------------ steps
    def apply_and_emit(self, records: list[Record],
                       idle: Callable[[int], set[int]] | None = None) -> StepResult:
        """Apply a batch, move the watermarks, write the finished row buckets, and collect
        the Kafka messages to send (synchronous; runs in a thread)."""
        t0 = time.perf_counter()
        self._maybe_reload_catalog()
        now_ms = int(self.clock() * 1000)
        res = StepResult(events=len(records))
        kind_of, internal = self.kind_of, self.internal
        for topic, p, offset, value in records:
            kind = kind_of.get(topic)
            if kind is not None:
                self._s1(p).apply(kind, offset, value, now_ms)
            elif topic == internal:
                self._s2(p).apply(offset, value or b"{}")
        t1 = time.perf_counter()
        for p, (state, _) in self.stage1.items():
            state.advance(idle(p) if idle else frozenset())
        t2 = time.perf_counter()
        for p, (state, _) in self.stage1.items():
            for dl in state.dead_letters:
                key, value = dead_letter_message(dl, self.topic_of[dl.kind], p, self.worker)
                res.messages.append((self.config.kafka.topics.dead_letter, None, key, value))
            by_target: dict[int, list] = {}
            for rec in state.item_records:
                by_target.setdefault(rec[2] % self.partitions, []).append(rec)
            for target in sorted(by_target):
                res.messages.append((internal, target, str(p).encode(), encode_records(p, by_target[target])))
            for bucket, table in state.finished_rows:
                self.rows.write(p, bucket, self.cfg.rows_bucket_ms, table)
            self.stats["dead_letters"] += len(state.dead_letters)
            self.stats["item_records"] += len(state.item_records)
            self.stats["rows"] += sum(t.num_rows for _, t in state.finished_rows)
            state.reset_emitted()
        self.stats["events"] += res.events
        self.stats["steps"] += 1
        self.timings["apply_s"] += t1 - t0
        self.timings["advance_s"] += t2 - t1
        self.timings["emit_s"] += time.perf_counter() - t2
        return res

    def flush(self, stage2: bool = True) -> dict[tuple[str, int], int]:
        """Write the online features changed since the last flush (batched per view) and
        checkpoint every changed state (stage 2 only with ``stage2``); returns the offsets
        to commit to the group."""
        t0 = time.perf_counter()
        offsets: dict[tuple[str, int], int] = {}
        for p, (state, ck) in list(self.stage1.items()):
            if not (state.meta_dirty or state.dirty_users or state.dirty_history or state.ck_users
                    or state.ck_done_buckets):
                continue
            if state.dirty_history:
                self.feast.write_history(state.history_features(sorted(state.dirty_history)))
            if state.dirty_users:
                self.feast.write_counters(state.counter_features(sorted(state.dirty_users)))
            try:
                ck.commit_stage1(state)
            except LostOwnership as exc:
                log.warning("stage 1 partition %d: %s; dropping it", p, exc)
                self.stage1.pop(p)[1].close()
                continue
            state.reset_checkpointed()
            for kind in range(3):
                offsets[(self.topic_of[kind], p)] = state.next_offset[kind]
        t1 = time.perf_counter()
        for p, (state, ck) in list(self.stage2.items()) if stage2 else ():
            if not (state.meta_dirty or state.dirty_items):
                continue
            if state.dirty_items:
                self.feast.write_items(state.item_features(sorted(state.dirty_items)))
            if state.dirty_query_items:
                self.feast.write_query_items(state.query_item_features(sorted(state.dirty_query_items)))
            try:
                ck.commit_stage2(state)
            except LostOwnership as exc:
                log.warning("stage 2 partition %d: %s; dropping it", p, exc)
                self.stage2.pop(p)[1].close()
                continue
            state.reset_outputs()
            offsets[(self.internal, p)] = state.next_offset
        self.stats["flushes"] += 1
        self.last_flush = self.clock()
        if stage2:
            self.last_stats_flush = self.last_flush
        self.timings["flush_stage1_s"] += t1 - t0
        self.timings["flush_stage2_s"] += time.perf_counter() - t1
        return offsets

    async def step(self, records: list[Record], send: Send, idle: Callable[[int], set[int]] | None = None,
                   flush: bool | None = None) -> dict[tuple[str, int], int]:
        """Apply, emit (awaiting the broker's acks), and — every ``flush_interval_s``, or
        when ``flush`` is True — flush. Returns the offsets to commit (empty without a flush)."""
        self.busy = True
        if records and self.t_first is None:
            self.t_first, self.cpu_first = self.clock(), time.process_time()
        try:
            res = await asyncio.to_thread(self.apply_and_emit, records, idle)
            if res.messages:
                t0 = time.perf_counter()
                acks = [await send(topic, part, key, value) for topic, part, key, value in res.messages]
                await asyncio.gather(*acks)
                self.timings["send_s"] += time.perf_counter() - t0
            now = self.clock()
            s = self.config.streams
            stage2 = flush is True or now - self.last_stats_flush >= s.stats_flush_interval_s
            if flush is None:
                flush = stage2 or now - self.last_flush >= s.flush_interval_s
            offsets = await asyncio.to_thread(self.flush, stage2) if flush else {}
            if records or offsets:
                self.t_last, self.cpu_last = self.clock(), time.process_time()
            return offsets
        finally:
            self.busy = False

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        up = max(self.clock() - self.started, 1e-9)
        return {
            "worker": self.worker,
            "busy": self.busy,
            "unflushed": any(st.meta_dirty or st.dirty_users for st, _ in self.stage1.values())
            or any(st.meta_dirty or st.dirty_items for st, _ in self.stage2.values()),
            "catalog": self.catalog.version,
            "events": self.stats["events"],
            "events_per_s": round(self.stats["events"] / up, 1),
            "busy_window": {"t_first": self.t_first, "t_last": self.t_last,
                            "cpu_s": round(self.cpu_last - self.cpu_first, 3)},
            "stats": dict(self.stats),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "feast_rows": dict(getattr(self.feast, "rows_written", {})),
            "stage1": {str(p): {
                "next_offset": dict(zip(KINDS, s.next_offset)), "watermark": s.watermark, "max_ts": s.max_ts,
                "users": len(s.users), "pending_impressions": sum(len(v) for v in s.pending.values()),
                "drained": s.is_drained(), "counts": dict(s.counts)} for p, (s, _) in sorted(self.stage1.items())},
            "stage2": {str(p): {"next_offset": s.next_offset, "items": len(s.items), "counts": dict(s.counts)}
                       for p, (s, _) in sorted(self.stage2.items())},
        }
