"""Stage 1 of the stream jobs: the state of one Kafka partition (all three event topics
share the partition number: events are keyed by user) and its pure transitions.

Everything the stream publishes is a function of the *log*, not of the order in which a
worker happens to read its three topics, how it batches them, or when it crashed:

* **Accepted events.** Per topic-partition, in offset order: a message that does not
  pass the schema, sits on the wrong topic, or is stamped more than ``max_future_s``
  ahead of the wall clock is a dead letter. A schema-valid event whose id was already
  accepted is a duplicate (dropped, counted). An event stamped more than ``lateness_s``
  before the newest event read earlier from the same topic-partition (or before the
  partition's watermark) is late: a dead letter with that reason.
* **Watermark.** ``W = min over the three topics (newest ts read - lateness)``: no event
  accepted later can be older than ``W``. A control message ``{"control": "watermark",
  "ts": T}`` on a topic-partition counts as an event at ``T`` for the watermark (an
  end-of-log marker uses ``T = TS_MAX_MS``). Rows, order validity and dead letters for
  missing clicks are decided only behind ``W``, so they cannot change afterwards.
  Optionally a caught-up, silent topic-partition stops holding ``W`` back (idleness).
* **Orders.** An order is valid when the same user clicked the same (request, item) at
  most ``order_window_s`` before it; an order whose click is still unknown waits, and is
  a dead letter ("order without a click") once ``W`` passes its ts.
* **Behaviour sequence** (``user_history``): the user's last ``history_len`` accepted
  clicks by (ts, event_id), newest first; action ORDER when a valid order of the same
  (request, item) followed the click within the order window.
* **Labelled row** of an impression at ``t`` (written once ``W > t + click_window +
  order_window``): click = a click of the same (request, item) in ``[t, t + click_window]``;
  order = a valid order of it within ``order_window`` after such a click; global_click /
  global_order = a click in ``[t, t + click_window]`` / a valid order in
  ``[t, t + click_window + order_window]`` by the same user on the same item in any
  scenario; the history as of ``t`` (clicks before ``t``; ORDER only for orders before
  ``t``), the user's profile and the item's attributes from the catalog.
* **Counters** (``user_counters``): impressions, clicks and valid orders per scenario in
  windows of whole ``WINDOW_BUCKET_S`` buckets ending at the user's newest event.

:mod:`streams.offline` computes the same outputs from a whole log in batch.
"""
from __future__ import annotations

import heapq
import json
import math
from bisect import bisect_left, insort
from collections import Counter, deque
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from features.layout import USER_WINDOWS, WINDOW_BUCKET_S
from streams.catalog import Catalog, normalise_query
from usr.data.events import TS_MAX_MS, TS_MIN_MS, Event, EventValidationError, validate_event
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, IMPRESSION_SCHEMA, SOURCE_REC, SOURCE_SEARCH

KIND_IMPRESSION, KIND_CLICK, KIND_ORDER = 0, 1, 2
KINDS = ("impression", "click", "order")
KIND_OF_TYPE = {name: k for k, name in enumerate(KINDS)}
SCENARIO_IDX = {"search": 0, "rec": 1}
MS_HOUR, MS_DAY = 3_600_000, 86_400_000
END_OF_LOG_TS = TS_MAX_MS
PRUNE_EVERY_MS = 15 * 60_000
_SEEN_PREFIX = ("i:", "c:", "o:")   # duplicates are detected per topic: (kind, event_id)

# click entry: a list, so the order upgrade can be set in place
C_TS, C_ID, C_REQ, C_ITEM, C_SCEN, C_QUERY, C_ORDER_TS = range(7)
# valid / pending order: (ts, event_id, request_id, item_id, scen, query)
# pending impression: (ts, event_id, request_id, user_id, item_id, scen, query, position)


@dataclass(frozen=True)
class StateConfig:
    """The parameters of the state transitions (times in ms)."""

    history_len: int = 50
    click_window_ms: int = 1_800_000
    order_window_ms: int = 86_400_000
    lateness_ms: int = 300_000
    dedup_retention_ms: int = 3_600_000
    max_future_ms: int = 3_600_000
    rows_bucket_ms: int = 60_000
    window_bucket_ms: int = WINDOW_BUCKET_S * 1000
    window_buckets: tuple[int, ...] = tuple(s // WINDOW_BUCKET_S for s in USER_WINDOWS.values())
    day_origin_ms: int = int(np.datetime64("2024-03-04", "ms").astype(np.int64))

    @property
    def horizon_ms(self) -> int:
        """How long after an impression its labels can still change."""
        return self.click_window_ms + self.order_window_ms

    @classmethod
    def from_streams(cls, s: Any) -> "StateConfig":
        """From ``config.streams`` (:class:`usr.config.StreamsConfig`)."""
        return cls(
            history_len=s.history_len, click_window_ms=s.click_window_s * 1000, order_window_ms=s.order_window_s * 1000,
            lateness_ms=s.lateness_s * 1000, dedup_retention_ms=s.dedup_retention_s * 1000,
            max_future_ms=s.max_future_s * 1000, rows_bucket_ms=s.rows_bucket_s * 1000,
            day_origin_ms=int((date.fromisoformat(s.day_origin) - date(1970, 1, 1)).days) * MS_DAY,
        )


@dataclass(frozen=True)
class DeadLetter:
    kind: int
    offset: int
    payload: bytes
    field: str
    reason: str


class UserState:
    """One user's retained behaviour and counters."""

    __slots__ = ("clicks", "keys", "orders", "pending_orders", "buckets", "last_ts")

    def __init__(self) -> None:
        self.clicks: list[list[Any]] = []          # sorted by (ts, event_id)
        self.keys: list[tuple[int, str]] = []      # (ts, event_id) of each click, for bisect
        self.orders: list[tuple] = []              # valid orders, sorted by (ts, event_id)
        self.pending_orders: list[tuple] = []      # orders whose click is not known yet (+ offset)
        self.buckets: dict[int, list[int]] = {}    # window bucket -> [imp_s, clk_s, ord_s, imp_r, clk_r, ord_r]
        self.last_ts: int | None = None

    def to_tuple(self) -> tuple:
        return (self.clicks, self.orders, self.pending_orders, self.buckets, self.last_ts)

    @classmethod
    def from_tuple(cls, t: tuple) -> "UserState":
        u = cls()
        u.clicks, u.orders, u.pending_orders, u.buckets, u.last_ts = t
        u.keys = [(c[C_TS], c[C_ID]) for c in u.clicks]
        return u


_json_decode = json.JSONDecoder().decode
_KEYS_REC = frozenset({"schema_version", "event_type", "event_id", "request_id", "user_id", "item_id", "scenario",
                       "position", "ts"})
_KEYS_SEARCH = _KEYS_REC | {"query"}


def _fast_event(d: dict) -> Event | None:
    """The common case of :func:`usr.data.events.validate_event` without its generic
    machinery: returns the Event when every v1 check passes, None when anything is
    unusual (the caller then asks ``validate_event`` for the exact reason)."""
    if d.get("schema_version") != 1 or type(d["schema_version"]) is not int:
        return None
    scen = d.get("scenario")
    keys = d.keys()
    if scen == "rec":
        if keys != _KEYS_REC and (keys != _KEYS_SEARCH or d["query"] != ""):
            return None
        query = ""
    elif scen == "search":
        query = d.get("query")
        if keys != _KEYS_SEARCH or type(query) is not str or not query.strip():
            return None
    else:
        return None
    et, eid, rid, uid, iid, pos, ts = (d["event_type"], d["event_id"], d["request_id"], d["user_id"], d["item_id"],
                                       d["position"], d["ts"])
    if (et not in KIND_OF_TYPE or type(eid) is not str or not eid or type(rid) is not str or not rid
            or type(uid) is not int or uid < 0 or type(iid) is not int or iid < 0 or type(pos) is not int or pos < 0
            or type(ts) is not int or not TS_MIN_MS <= ts < TS_MAX_MS):
        return None
    return Event(event_type=et, event_id=eid, request_id=rid, user_id=uid, item_id=iid, scenario=scen,
                 position=pos, ts=ts, query=query, schema_version=1)


def decode(raw: bytes | None) -> tuple[str, Any]:
    """("event", Event) | ("control", ts) | ("invalid", EventValidationError)."""
    try:
        data = _json_decode(raw.decode("utf-8")) if raw is not None else None
    except (ValueError, UnicodeDecodeError, AttributeError):
        data = None
    if type(data) is dict:
        if "control" in data:
            if data.get("control") != "watermark" or set(data) != {"control", "ts"}:
                return "invalid", EventValidationError(
                    "control", "unknown control message (expected {'control': 'watermark', 'ts': ms})")
            ts = data.get("ts")
            if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
                return "invalid", EventValidationError("ts", "a watermark needs an integer ts (ms)")
            return "control", ts
        ev = _fast_event(data)
        if ev is not None:
            return "event", ev
    try:
        return "event", validate_event(data if isinstance(data, dict) else (raw if raw is not None else b""))
    except EventValidationError as exc:
        return "invalid", exc


def counter_slot(kind: int, scen: int) -> int:
    return scen * 3 + kind


class PartitionState:
    """The stage-1 state of one partition. Feed it messages with :meth:`apply` (in offset
    order per topic), call :meth:`advance` after a batch, and drain the outputs."""

    def __init__(self, partition: int, cfg: StateConfig, catalog: Catalog) -> None:
        self.partition = partition
        self.cfg = cfg
        self.catalog = catalog
        self.next_offset = [0, 0, 0]              # first offset not yet applied, per topic
        self.max_ts: list[int | None] = [None, None, None]
        self.watermark: int | None = None
        self.users: dict[int, UserState] = {}
        self.seen: dict[str, int] = {}            # "<kind>:<event id>" of accepted events -> ts
        self._seen_heap: list[tuple[int, str]] = []
        self.pending: dict[int, list[tuple]] = {}  # rows bucket -> impressions waiting for their labels
        self.order_queue: deque[list[Any]] = deque()  # [offset, status(None|True|False), record] in offset order
        self.users_with_pending_orders: set[int] = set()
        self.counts: Counter[str] = Counter()
        self._pruned_at: int | None = None
        self.reset_outputs()

    # ------------------------------------------------------------------ outputs
    def reset_outputs(self) -> None:
        """Forget everything handed out (emitted outputs and checkpoint deltas)."""
        self.reset_emitted()
        self.reset_checkpointed()

    def reset_emitted(self) -> None:
        """Forget the outputs of the last step (after they were written / sent)."""
        self.dead_letters: list[DeadLetter] = []
        # item records for stage 2, in emission order: (kind, offset, item_id, scen, query, ts)
        self.item_records: list[tuple[int, int, int, int, str, int]] = []
        self.finished_rows: list[tuple[int, pa.Table]] = []  # (rows bucket, labelled rows)

    def reset_checkpointed(self) -> None:
        """Forget the changes since the last checkpoint (after it was committed)."""
        self.dirty_users: set[int] = set()          # users whose counters changed (user_counters)
        self.dirty_history: set[int] = set()        # ... whose behaviour sequence changed (user_history)
        self.meta_dirty = False
        self.ck_users: set[int] = set()
        self.ck_new_pending: list[tuple] = []
        self.ck_done_buckets: list[int] = []
        self.ck_new_seen: list[tuple[str, int]] = []
        self.ck_seen_below: int | None = None

    # ------------------------------------------------------------------ input
    def _dead(self, kind: int, offset: int, raw: bytes | None, field: str, reason: str) -> None:
        self.counts["dead_letters"] += 1
        self.dead_letters.append(DeadLetter(kind, offset, raw if raw is not None else b"", field, reason))

    def apply(self, kind: int, offset: int, raw: bytes | None, now_ms: int) -> None:
        """Apply one message of topic ``kind`` at ``offset`` (a replay below the applied
        offsets is ignored)."""
        if offset < self.next_offset[kind]:
            self.counts["replayed"] += 1
            return
        self.next_offset[kind] = offset + 1
        self.meta_dirty = True
        what, obj = decode(raw)
        if what == "control":
            self.counts["watermarks"] += 1
            prev = self.max_ts[kind]
            self.max_ts[kind] = obj if prev is None else max(prev, obj)
            return
        if what == "invalid":
            self._dead(kind, offset, raw, obj.field, obj.reason)
            return
        ev = obj
        if KIND_OF_TYPE[ev.event_type] != kind:
            self._dead(kind, offset, raw, "event_type", f"a {ev.event_type} event on the {KINDS[kind]}s topic")
            return
        ts = ev.ts
        if ts > now_ms + self.cfg.max_future_ms:
            self._dead(kind, offset, raw, "ts", f"{ts} is {(ts - now_ms) // 1000} s ahead of the clock "
                                                f"(more than max_future_s={self.cfg.max_future_ms // 1000})")
            return
        prev = self.max_ts[kind]
        self.max_ts[kind] = ts if prev is None or ts > prev else prev
        seen_key = _SEEN_PREFIX[kind] + ev.event_id
        if seen_key in self.seen:
            self.counts["duplicates"] += 1
            return
        lateness = self.cfg.lateness_ms
        if prev is not None and ts < prev - lateness:
            self._dead(kind, offset, raw, "ts", f"late: {prev - ts} ms older than an earlier {KINDS[kind]} of this "
                                                f"partition (lateness bound {lateness // 1000} s)")
            return
        if self.watermark is not None and ts < self.watermark:
            self._dead(kind, offset, raw, "ts", f"late: {self.watermark - ts} ms behind the partition's watermark")
            return
        self.seen[seen_key] = ts
        heapq.heappush(self._seen_heap, (ts, seen_key))
        self.ck_new_seen.append((seen_key, ts))
        self.counts["accepted"] += 1
        user = self.users.get(ev.user_id)
        if user is None:
            user = self.users[ev.user_id] = UserState()
        scen = SCENARIO_IDX[ev.scenario]
        if kind == KIND_IMPRESSION:
            self._impression(ev, user, scen, offset)
        elif kind == KIND_CLICK:
            self._click(ev, user, scen, offset)
        else:
            self._order(ev, user, scen, offset)

    def _count(self, user: UserState, kind: int, scen: int, ts: int) -> None:
        b = ts // self.cfg.window_bucket_ms
        slots = user.buckets.get(b)
        if slots is None:
            slots = user.buckets[b] = [0, 0, 0, 0, 0, 0]
        slots[counter_slot(kind, scen)] += 1
        if user.last_ts is None or ts > user.last_ts:
            user.last_ts = ts

    def _impression(self, ev: Any, user: UserState, scen: int, offset: int) -> None:
        self._count(user, KIND_IMPRESSION, scen, ev.ts)
        imp = (ev.ts, ev.event_id, ev.request_id, ev.user_id, ev.item_id, scen, ev.query, ev.position)
        bucket = ev.ts // self.cfg.rows_bucket_ms
        lst = self.pending.get(bucket)
        if lst is None:
            lst = self.pending[bucket] = []
        lst.append(imp)
        self.ck_new_pending.append(imp)
        self.item_records.append((KIND_IMPRESSION, offset, ev.item_id, scen, normalise_query(ev.query), ev.ts))
        self.dirty_users.add(ev.user_id)
        self.ck_users.add(ev.user_id)

    def _click(self, ev: Any, user: UserState, scen: int, offset: int) -> None:
        ts, ow = ev.ts, self.cfg.order_window_ms
        entry = [ts, ev.event_id, ev.request_id, ev.item_id, scen, ev.query, None]
        for o in user.orders:   # valid orders that follow this click within the window upgrade it
            if o[2] == ev.request_id and o[3] == ev.item_id and ts <= o[0] <= ts + ow:
                entry[C_ORDER_TS] = o[0] if entry[C_ORDER_TS] is None else min(entry[C_ORDER_TS], o[0])
        key = (ts, ev.event_id)
        i = bisect_left(user.keys, key)
        user.keys.insert(i, key)
        user.clicks.insert(i, entry)
        self._count(user, KIND_CLICK, scen, ts)
        self.item_records.append((KIND_CLICK, offset, ev.item_id, scen, normalise_query(ev.query), ts))
        self.dirty_users.add(ev.user_id)
        self.dirty_history.add(ev.user_id)
        self.ck_users.add(ev.user_id)
        if user.pending_orders:
            still = []
            for p in user.pending_orders:
                if p[2] == ev.request_id and p[3] == ev.item_id and p[0] - ow <= ts <= p[0]:
                    self._valid_order(ev.user_id, user, p[:6])
                    self._resolve(p[6], True)
                else:
                    still.append(p)
            user.pending_orders = still
            if not still:
                self.users_with_pending_orders.discard(ev.user_id)

    def _order(self, ev: Any, user: UserState, scen: int, offset: int) -> None:
        rec = (ev.ts, ev.event_id, ev.request_id, ev.item_id, scen, ev.query)
        ow = ev.ts - self.cfg.order_window_ms
        valid = any(c[C_REQ] == ev.request_id and c[C_ITEM] == ev.item_id and ow <= c[C_TS] <= ev.ts
                    for c in user.clicks)
        self.order_queue.append([offset, None, (KIND_ORDER, offset, ev.item_id, scen, normalise_query(ev.query), ev.ts),
                                 ev.user_id, rec])
        if valid:
            self._valid_order(ev.user_id, user, rec)
            self._resolve(offset, True)
        else:
            user.pending_orders.append(rec + (offset,))
            self.users_with_pending_orders.add(ev.user_id)
            self.ck_users.add(ev.user_id)
            self.counts["orders_waiting"] += 1

    def _valid_order(self, user_id: int, user: UserState, rec: tuple) -> None:
        ts, _, req, item, scen, _ = rec
        insort(user.orders, rec)
        ow = self.cfg.order_window_ms
        for c in user.clicks:
            if c[C_REQ] == req and c[C_ITEM] == item and c[C_TS] <= ts <= c[C_TS] + ow:
                c[C_ORDER_TS] = ts if c[C_ORDER_TS] is None else min(c[C_ORDER_TS], ts)
        self._count(user, KIND_ORDER, scen, ts)
        self.dirty_users.add(user_id)
        self.dirty_history.add(user_id)
        self.ck_users.add(user_id)

    def _resolve(self, offset: int, status: bool) -> None:
        """Mark the queued order at ``offset`` and emit the resolved prefix of the queue
        (item records of orders go out in offset order)."""
        for entry in self.order_queue:
            if entry[0] == offset:
                entry[1] = status
                break
        q = self.order_queue
        while q and q[0][1] is not None:
            entry = q.popleft()
            if entry[1]:
                self.item_records.append(entry[2])

    # ------------------------------------------------------------------ watermark
    def compute_watermark(self, idle_kinds: frozenset[int] | set[int] = frozenset()) -> int | None:
        lat = self.cfg.lateness_ms
        active = [k for k in range(3) if k not in idle_kinds]
        if active:
            if any(self.max_ts[k] is None for k in active):
                return self.watermark
            w = min(self.max_ts[k] for k in active) - lat  # type: ignore[type-var]
        else:
            seen = [m for m in self.max_ts if m is not None]
            if not seen:
                return self.watermark
            w = max(seen) - lat
        return w if self.watermark is None or w > self.watermark else self.watermark

    def advance(self, idle_kinds: frozenset[int] | set[int] = frozenset()) -> None:
        """Move the watermark and decide what it makes final: orders without a click
        become dead letters, row buckets behind it are labelled and handed out."""
        w = self.compute_watermark(idle_kinds)
        if w is None or w == self.watermark:
            return
        self.watermark = w
        self.meta_dirty = True
        # orders whose click can no longer arrive
        for uid in sorted(self.users_with_pending_orders):
            user = self.users[uid]
            still = []
            for p in user.pending_orders:
                if p[0] < w:
                    self._resolve(p[6], False)
                    self.counts["orders_without_click"] += 1
                    raw = json.dumps({"event_type": "order", "event_id": p[1], "request_id": p[2], "user_id": uid,
                                      "item_id": p[3], "ts": p[0]}).encode()
                    self._dead(KIND_ORDER, p[6], raw, "click",
                               f"order without a click on request {p[2]} item {p[3]} by user {uid} within "
                               f"order_window_s={self.cfg.order_window_ms // 1000} before it")
                else:
                    still.append(p)
            user.pending_orders = still
            self.ck_users.add(uid)
        self.users_with_pending_orders = {u for u in self.users_with_pending_orders if self.users[u].pending_orders}
        # row buckets whose labels are final
        bms, h = self.cfg.rows_bucket_ms, self.cfg.horizon_ms
        done = sorted(b for b in self.pending if (b + 1) * bms - 1 + h < w)
        for b in done:
            imps = sorted(self.pending.pop(b))
            self.finished_rows.append((b, self._rows(imps)))
            self.ck_done_buckets.append(b)
            self.counts["rows"] += len(imps)
        self._prune(w)

    def is_drained(self) -> bool:
        """Nothing waits for the watermark (every impression labelled, every order decided)."""
        return not self.pending and not self.users_with_pending_orders

    # ------------------------------------------------------------------ retention
    def _prune(self, w: int) -> None:
        """Forget what no future output can depend on (bounded state)."""
        step = self.cfg.window_bucket_ms
        # a pass over all users: at most every PRUNE_EVERY_MS of event time (bounds memory, not results)
        if self._pruned_at is not None and w - self._pruned_at < PRUNE_EVERY_MS \
                and w < END_OF_LOG_TS - self.cfg.lateness_ms:
            return
        self._pruned_at = w
        min_pending = min(self.pending) * self.cfg.rows_bucket_ms if self.pending else w
        click_keep = min(min_pending, w - self.cfg.order_window_ms)
        order_keep = min(min_pending, w)
        span = max(self.cfg.window_buckets) if self.cfg.window_buckets else 0
        L = self.cfg.history_len
        waiting = {imp[3] for imps in self.pending.values() for imp in imps}
        idle_before = w - (span + 1) * step
        gone = []
        for uid, user in self.users.items():
            changed = False
            if user.clicks and user.clicks[0][C_TS] < click_keep:
                i = bisect_left(user.keys, (click_keep, ""))
                cut = max(0, i - L)
                if cut:
                    del user.clicks[:cut]
                    del user.keys[:cut]
                    changed = True
            if user.orders and user.orders[0][0] < order_keep:
                user.orders = [o for o in user.orders if o[0] >= order_keep]
                changed = True
            if user.buckets and user.last_ts is not None:
                lo = user.last_ts // step - span
                old = [b for b in user.buckets if b <= lo]
                for b in old:
                    del user.buckets[b]
                changed = changed or bool(old)
            if changed:
                self.ck_users.add(uid)
            # a user with no behaviour left whose counters all lie outside every future window
            if (not user.clicks and not user.orders and not user.pending_orders and uid not in waiting
                    and uid not in self.dirty_users and uid not in self.dirty_history and (user.last_ts is None or user.last_ts < idle_before)):
                gone.append(uid)
        for uid in gone:
            del self.users[uid]
            self.ck_users.add(uid)
        below = w - self.cfg.dedup_retention_ms
        heap = self._seen_heap
        while heap and heap[0][0] < below:
            _, eid = heapq.heappop(heap)
            self.seen.pop(eid, None)
        self.ck_seen_below = below

    # ------------------------------------------------------------------ features
    def history(self, user: UserState, before: int | None = None) -> list[list[Any]]:
        """The last ``history_len`` clicks (before ``before`` if given), newest first."""
        i = len(user.keys) if before is None else bisect_left(user.keys, (before, ""))
        return user.clicks[max(0, i - self.cfg.history_len):i][::-1]

    def counters(self, user: UserState) -> list[list[int]]:
        """Per window: counts in COUNT_LAYOUT order, over the buckets ending at the newest event."""
        out = []
        if user.last_ts is None:
            return [[0] * 9 for _ in self.cfg.window_buckets]
        b_u = user.last_ts // self.cfg.window_bucket_ms
        for n in self.cfg.window_buckets:
            acc = [0] * 6
            for b, slots in user.buckets.items():
                if b_u - n < b <= b_u:
                    for j in range(6):
                        acc[j] += slots[j]
            out.append(acc + [acc[0] + acc[3], acc[1] + acc[4], acc[2] + acc[5]])
        return out

    def history_features(self, user_ids: list[int]) -> dict[str, list]:
        """``user_history`` columns (the behaviour sequence as of everything read)."""
        cat = self.catalog
        cols: dict[str, list] = {k: [] for k in (
            "user_id", "hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action", "hist_query",
            "hist_ts", "as_of")}
        for uid in user_ids:
            user = self.users.get(uid)
            if user is None:
                continue
            entries = self.history(user)
            cols["user_id"].append(uid)
            items = [c[C_ITEM] for c in entries]
            attrs = [cat.item_attrs(i) for i in items]
            cols["hist_item_id"].append(items)
            cols["hist_cate2"].append([a[1] for a in attrs])
            cols["hist_brand"].append([a[2] for a in attrs])
            cols["hist_source"].append([SOURCE_SEARCH if c[C_SCEN] == 0 else SOURCE_REC for c in entries])
            cols["hist_action"].append([ACTION_CLICK if c[C_ORDER_TS] is None else ACTION_ORDER for c in entries])
            cols["hist_query"].append([c[C_QUERY] for c in entries])
            cols["hist_ts"].append([c[C_TS] for c in entries])
            cols["as_of"].append(max([c[C_TS] for c in entries] + [c[C_ORDER_TS] for c in entries
                                                                   if c[C_ORDER_TS] is not None], default=0))
        return cols

    def counter_features(self, user_ids: list[int]) -> dict[str, list]:
        """``user_counters`` columns."""
        cols: dict[str, list] = {k: [] for k in ("user_id", "counts_as_of", *(f"counts_{w}" for w in USER_WINDOWS))}
        for uid in user_ids:
            user = self.users.get(uid)
            if user is None:
                continue
            cols["user_id"].append(uid)
            cols["counts_as_of"].append(user.last_ts or 0)
            for w, counts in zip(USER_WINDOWS, self.counters(user)):
                cols[f"counts_{w}"].append(counts)
        return cols

    def user_features(self, user_ids: list[int]) -> dict[str, list]:
        """Both user views for these users, as columns (history columns first)."""
        hist = self.history_features(user_ids)
        counters = self.counter_features(hist["user_id"])
        hist.pop("as_of")
        hist.update({k: v for k, v in counters.items() if k != "user_id"})
        return hist

    # ------------------------------------------------------------------ rows
    def _rows(self, imps: list[tuple]) -> pa.Table:
        """Labelled rows (IMPRESSION_SCHEMA) of finalised impressions, sorted by (ts, event_id)."""
        cfg, cat = self.cfg, self.catalog
        cw, ow, L = cfg.click_window_ms, cfg.order_window_ms, cfg.history_len
        n = len(imps)
        ts = np.fromiter((i[0] for i in imps), np.int64, n)
        uids = np.fromiter((i[3] for i in imps), np.int64, n)
        items = np.fromiter((i[4] for i in imps), np.int64, n)
        # labels: a few clicks / orders per (user, item), looked up through per-user indexes
        click = np.zeros(n, np.int8)
        order = np.zeros(n, np.int8)
        g_click = np.zeros(n, np.int8)
        g_order = np.zeros(n, np.int8)
        index: dict[int, tuple[dict, dict]] = {}
        for j, (t, _, req, uid, item, _, _, _) in enumerate(imps):
            idx = index.get(uid)
            if idx is None:
                user = self.users[uid]
                by_item: dict[int, list] = {}
                for c in user.clicks:
                    by_item.setdefault(c[C_ITEM], []).append(c)
                o_by_item: dict[int, list] = {}
                for o in user.orders:
                    o_by_item.setdefault(o[3], []).append(o)
                idx = index[uid] = (by_item, o_by_item)
            cl = idx[0].get(item)
            if cl:
                hits = [c for c in cl if t <= c[C_TS] <= t + cw]
                if hits:
                    g_click[j] = 1
                    mine = [c for c in hits if c[C_REQ] == req]
                    if mine:
                        click[j] = 1
                        os_ = idx[1].get(item, ())
                        if any(o[2] == req and c[C_TS] <= o[0] <= c[C_TS] + ow for o in os_ for c in mine):
                            order[j] = 1
            os_ = idx[1].get(item)
            if os_ and any(t <= o[0] <= t + cw + ow for o in os_):
                g_order[j] = 1
        # histories: the last L clicks before each impression, newest first, gathered in one go
        base: dict[int, int] = {}
        c_ts, c_item, c_scen, c_ots = [], [], [], []
        none = np.iinfo(np.int64).max
        for uid in dict.fromkeys(uids.tolist()):
            base[uid] = len(c_ts)
            for c in self.users[uid].clicks:
                c_ts.append(c[C_TS])
                c_item.append(c[C_ITEM])
                c_scen.append(c[C_SCEN])
                c_ots.append(none if c[C_ORDER_TS] is None else c[C_ORDER_TS])
        a_ts = np.array(c_ts, np.int64)
        end = np.zeros(n, np.int64)
        start = np.zeros(n, np.int64)
        for uid, b in base.items():
            rows = np.flatnonzero(uids == uid)
            stop = b + len(self.users[uid].clicks)
            start[rows] = b
            end[rows] = b + np.searchsorted(a_ts[b:stop], ts[rows], side="left")
        cnt = np.minimum(end - start, L)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(cnt, out=offsets[1:])
        total = int(offsets[-1])
        take = np.repeat(end - 1, cnt) - (np.arange(total) - np.repeat(offsets[:-1].astype(np.int64), cnt))
        h_item = np.array(c_item, np.int64)[take] if total else np.zeros(0, np.int64)
        h_scen = np.array(c_scen, np.int64)[take] if total else np.zeros(0, np.int64)
        h_ots = np.array(c_ots, np.int64)[take] if total else np.zeros(0, np.int64)
        h_ordered = h_ots < np.repeat(ts, cnt)
        off = pa.array(offsets, pa.int32())

        def lst(values: np.ndarray, name: str) -> pa.Array:
            return pa.ListArray.from_arrays(off, pa.array(values, IMPRESSION_SCHEMA.field(name).type.value_type))

        qcache: dict[str, tuple[int, tuple[int, ...]]] = {}
        qf = []
        for imp in imps:
            q = imp[6]
            hit = qcache.get(q)
            if hit is None:
                hit = qcache[q] = cat.query_features(q)
            qf.append(hit)
        f = IMPRESSION_SCHEMA.field
        cols = {
            "event_id": pa.array([i[1] for i in imps], pa.string()),
            "request_id": pa.array([i[2] for i in imps], pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "day": pa.array((ts - cfg.day_origin_ms) // MS_DAY, pa.int32()),
            "user_id": pa.array(uids, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "scenario": pa.array(["search" if i[5] == 0 else "rec" for i in imps], pa.string()),
            "query": pa.array([i[6] for i in imps], pa.string()),
            "query_id": pa.array([q[0] for q in qf], pa.int64()),
            "query_terms": pa.array([list(q[1]) for q in qf], f("query_terms").type),
            "position": pa.array([i[7] for i in imps], pa.int32()),
            "hour": pa.array((ts // MS_HOUR) % 24, pa.int32()),
            "weekday": pa.array((ts // MS_DAY + 3) % 7, pa.int32()),
            "user_segment": pa.array(cat.user_column("user_segment", uids), pa.int32()),
            "user_level": pa.array(cat.user_column("user_level", uids), pa.int32()),
            **{c: pa.array(cat.item_column(c, items), f(c).type) for c in ("cate1", "cate2", "brand", "price_bucket")},
            "hist_item_id": lst(h_item, "hist_item_id"),
            "hist_cate2": lst(cat.item_column("cate2", h_item), "hist_cate2"),
            "hist_brand": lst(cat.item_column("brand", h_item), "hist_brand"),
            "hist_source": lst(np.where(h_scen == 0, SOURCE_SEARCH, SOURCE_REC), "hist_source"),
            "hist_action": lst(np.where(h_ordered, ACTION_ORDER, ACTION_CLICK), "hist_action"),
            "click": pa.array(click, pa.int8()),
            "order": pa.array(order, pa.int8()),
            "global_click": pa.array(g_click, pa.int8()),
            "global_order": pa.array(g_order, pa.int8()),
            "p_click": pa.array(np.full(n, np.nan, np.float32), pa.float32()),
            "p_ctcvr": pa.array(np.full(n, np.nan, np.float32), pa.float32()),
        }
        return pa.table(cols, schema=IMPRESSION_SCHEMA)

    # ------------------------------------------------------------------ snapshot
    def meta(self) -> dict[str, Any]:
        return {
            "next_offset": list(self.next_offset), "max_ts": list(self.max_ts), "watermark": self.watermark,
            "order_queue": [list(e[:2]) + [list(e[2]), e[3], list(e[4])] for e in self.order_queue],
            "counts": dict(self.counts), "pruned_at": self._pruned_at,
        }

    def load_meta(self, meta: dict[str, Any]) -> None:
        self.next_offset = list(meta["next_offset"])
        self.max_ts = list(meta["max_ts"])
        self.watermark = meta["watermark"]
        self.order_queue = deque([e[0], e[1], tuple(e[2]), e[3], tuple(e[4])] for e in meta["order_queue"])
        self.counts = Counter(meta.get("counts", {}))
        self._pruned_at = meta.get("pruned_at")

    def restore(self, meta: dict[str, Any], users: dict[int, tuple], pending: list[tuple],
                seen: list[tuple[str, int]]) -> None:
        """Rebuild from a checkpoint (the inverse of the deltas handed out)."""
        self.load_meta(meta)
        self.users = {uid: UserState.from_tuple(t) for uid, t in users.items()}
        self.users_with_pending_orders = {uid for uid, u in self.users.items() if u.pending_orders}
        self.pending = {}
        for imp in pending:
            self.pending.setdefault(imp[0] // self.cfg.rows_bucket_ms, []).append(tuple(imp))
        self.seen = dict(seen)
        self._seen_heap = [(ts, eid) for eid, ts in seen]
        heapq.heapify(self._seen_heap)
        self.reset_outputs()
