"""The stage-1 state transitions, rule by rule, on hand-written events."""
from __future__ import annotations

import json
import math
import random

import pytest

from streams.catalog import Catalog
from streams.state import (END_OF_LOG_TS, KIND_CLICK, KIND_IMPRESSION, KIND_ORDER, PartitionState, StateConfig,
                           _fast_event, decode)
from usr.data.events import EventValidationError, encode_event, validate_event
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, IMPRESSION_SCHEMA, SOURCE_REC, SOURCE_SEARCH

T0 = 1_709_532_000_000          # 2024-03-04 06:00 UTC
NOW = 4_000_000_000_000
S = 1000
CFG = StateConfig(click_window_ms=60 * S, order_window_ms=600 * S, lateness_ms=30 * S, dedup_retention_ms=3600 * S,
                  rows_bucket_ms=60 * S, history_len=3)
KIND = {"impression": KIND_IMPRESSION, "click": KIND_CLICK, "order": KIND_ORDER}


def ev(event_type: str, eid: str, ts: int, user: int = 1, item: int = 10, req: str = "r1", scenario: str = "rec",
       query: str = "", position: int = 0) -> bytes:
    d = {"schema_version": 1, "event_type": event_type, "event_id": eid, "request_id": req, "user_id": user,
         "item_id": item, "scenario": scenario, "position": position, "ts": ts}
    if scenario == "search":
        d["query"] = query or "milk"
    return encode_event(d)


class Feed:
    """Feeds one PartitionState, numbering offsets per topic."""

    def __init__(self, cfg: StateConfig = CFG, catalog: Catalog | None = None) -> None:
        self.state = PartitionState(0, cfg, catalog or Catalog())
        self.offsets = [0, 0, 0]
        self.rows: list = []
        self.dead: list = []
        self.records: list = []

    def send(self, kind: int, raw: bytes) -> None:
        self.state.apply(kind, self.offsets[kind], raw, NOW)
        self.offsets[kind] += 1

    def event(self, event_type: str, *args, **kw) -> None:
        self.send(KIND[event_type], ev(event_type, *args, **kw))

    def watermark(self, ts: int) -> None:
        for k in range(3):
            self.send(k, json.dumps({"control": "watermark", "ts": ts}).encode())

    def advance(self) -> None:
        self.state.advance()
        self.rows.extend(r for _, t in self.state.finished_rows for r in t.to_pylist())
        self.dead.extend(self.state.dead_letters)
        self.records.extend(self.state.item_records)
        self.state.reset_emitted()

    def close(self) -> list[dict]:
        self.watermark(END_OF_LOG_TS)
        self.advance()
        return sorted(self.rows, key=lambda r: (r["ts"], r["event_id"]))


def test_click_and_order_labels_need_the_same_request_item_within_the_windows() -> None:
    f = Feed()
    f.event("impression", "i1", T0, item=10)
    f.event("impression", "i2", T0, item=11, position=1)
    f.event("impression", "i3", T0, item=12, position=2)
    f.event("click", "c1", T0 + 5 * S, item=10)                  # within the click window
    f.event("click", "c3", T0 + 61 * S, item=12)                 # too late for i3
    f.event("order", "o1", T0 + 200 * S, item=10)                # 195 s after its click: attributed
    rows = {r["event_id"]: r for r in f.close()}
    assert (rows["i1"]["click"], rows["i1"]["order"], rows["i1"]["global_click"], rows["i1"]["global_order"]) == (1, 1, 1, 1)
    assert (rows["i2"]["click"], rows["i2"]["order"]) == (0, 0)
    assert (rows["i3"]["click"], rows["i3"]["global_click"]) == (0, 0)
    assert not f.dead


def test_global_labels_count_the_same_item_in_another_request_and_scenario() -> None:
    f = Feed()
    f.event("impression", "i1", T0, item=10, req="rec-1", scenario="rec")
    f.event("impression", "s1", T0 + 10 * S, item=10, req="search-1", scenario="search", query="Milk  oat")
    f.event("click", "c1", T0 + 12 * S, item=10, req="search-1", scenario="search", query="Milk  oat")
    f.event("order", "o1", T0 + 100 * S, item=10, req="search-1", scenario="search", query="Milk  oat")
    rows = {r["event_id"]: r for r in f.close()}
    assert (rows["i1"]["click"], rows["i1"]["global_click"], rows["i1"]["order"], rows["i1"]["global_order"]) == (0, 1, 0, 1)
    assert (rows["s1"]["click"], rows["s1"]["order"]) == (1, 1)
    assert rows["s1"]["query"] == "Milk  oat" and rows["s1"]["query_id"] > 0


def test_history_is_point_in_time_and_orders_show_only_once_placed() -> None:
    f = Feed()
    f.event("click", "c1", T0, item=1, req="a")
    f.event("click", "c2", T0 + 1 * S, item=2, req="a", scenario="search")
    f.event("impression", "i1", T0 + 2 * S, item=3, req="b")          # before the order
    f.event("order", "o1", T0 + 3 * S, item=1, req="a")
    f.event("impression", "i2", T0 + 4 * S, item=3, req="c")          # after it
    f.event("click", "c3", T0 + 5 * S, item=4, req="c")
    f.event("click", "c4", T0 + 6 * S, item=5, req="c")
    f.event("impression", "i3", T0 + 7 * S, item=6, req="c")          # history capped at 3
    rows = {r["event_id"]: r for r in f.close()}
    assert rows["i1"]["hist_item_id"] == [2, 1] and rows["i1"]["hist_action"] == [ACTION_CLICK, ACTION_CLICK]
    assert rows["i1"]["hist_source"] == [SOURCE_SEARCH, SOURCE_REC]
    assert rows["i2"]["hist_action"] == [ACTION_CLICK, ACTION_ORDER]
    assert rows["i3"]["hist_item_id"] == [5, 4, 2]
    online = f.state.history_features([1])
    assert online["hist_item_id"] == [[5, 4, 2]] and online["hist_ts"][0][0] == T0 + 6 * S


def test_rows_wait_for_the_watermark_and_follow_the_impression_schema() -> None:
    f = Feed()
    f.event("impression", "i1", T0)
    f.event("click", "c1", T0 + S)
    f.event("order", "o1", T0 + 2 * S)
    f.advance()
    assert f.rows == []
    # the watermark is the minimum over the three topics: two are not enough
    for k in (KIND_IMPRESSION, KIND_CLICK):
        f.send(k, json.dumps({"control": "watermark", "ts": T0 + 10_000 * S}).encode())
    f.advance()
    assert f.rows == []
    f.send(KIND_ORDER, json.dumps({"control": "watermark", "ts": T0 + 10_000 * S}).encode())
    f.advance()
    assert [r["event_id"] for r in f.rows] == ["i1"]
    assert set(f.rows[0]) == set(IMPRESSION_SCHEMA.names) and math.isnan(f.rows[0]["p_click"])
    assert f.state.is_drained()


def test_order_arriving_before_its_click_waits_and_an_order_without_click_is_a_dead_letter() -> None:
    f = Feed()
    f.event("impression", "i1", T0, item=10)
    f.event("order", "o1", T0 + 100 * S, item=10)                      # its click is still on the way
    f.event("order", "o2", T0 + 100 * S, item=99, req="nowhere")       # never clicked
    f.advance()
    assert f.state.counts["orders_waiting"] == 2 and not f.dead
    f.event("click", "c1", T0 + 3 * S, item=10)
    rows = {r["event_id"]: r for r in f.close()}
    assert rows["i1"]["order"] == 1
    assert [(d.field, d.offset) for d in f.dead] == [("click", 1)]
    assert "order without a click" in f.dead[0].reason
    # item records of orders go out in offset order, the invalid one left out
    assert [(r[0], r[1]) for r in f.records if r[0] == KIND_ORDER] == [(KIND_ORDER, 0)]


def test_duplicates_change_nothing_and_late_events_are_dead_letters() -> None:
    once, twice = Feed(), Feed()
    for f in (once, twice):
        f.event("impression", "i1", T0 + 100 * S)
        f.event("click", "c1", T0 + 101 * S)
    twice.event("impression", "i1", T0 + 100 * S)          # re-delivered
    twice.event("click", "c1", T0 + 101 * S)
    twice.event("impression", "late", T0)                  # 100 s behind: beyond the 30 s bound
    twice.event("impression", "ok", T0 + 80 * S)           # 20 s behind: accepted
    assert twice.state.counts["duplicates"] == 2
    assert once.state.counter_features([1]) != twice.state.counter_features([1])   # "ok" counts
    r1, r2 = once.close(), twice.close()
    assert [r["event_id"] for r in r2] == ["ok", "i1"]
    assert {k: v for k, v in r1[0].items() if not k.startswith("p_")} == \
        {k: v for k, v in r2[1].items() if not k.startswith("p_")}
    assert [(d.field, "late" in d.reason) for d in twice.dead] == [("ts", True)]


@pytest.mark.parametrize("raw,field", [
    (b"{not json", "$"),
    (b"\xff\xfe", "$"),
    (json.dumps({"schema_version": 1, "event_type": "impression"}).encode(), "event_id"),
    (ev("impression", "x", T0).replace(b'"user_id":1', b'"user_id":"1"'), "user_id"),
    (ev("impression", "x", T0).replace(b'"rec"', b'"feed"'), "scenario"),
    (ev("impression", "x", T0, scenario="search").replace(b',"query":"milk"', b""), "query"),
    (ev("click", "x", T0), "event_type"),                           # a click on the impressions topic
    (ev("impression", "x", NOW + 10 * 3600 * S), "ts"),             # stamped hours ahead of the clock
    (json.dumps({"control": "flush"}).encode(), "control"),
    (None, "$"),
])
def test_malformed_messages_become_dead_letters_with_the_field(raw: bytes | None, field: str) -> None:
    f = Feed()
    f.send(KIND_IMPRESSION, raw)
    f.event("impression", "fine", T0)
    f.advance()
    assert [d.field for d in f.dead] == [field] and f.dead[0].reason
    assert f.state.counts["accepted"] == 1


def test_counters_slide_by_whole_buckets_and_split_scenarios() -> None:
    f = Feed()
    f.event("impression", "a", T0, scenario="search")
    f.event("click", "b", T0 + S, scenario="search")
    f.event("impression", "c", T0 + 1800 * S)
    f.event("impression", "d", T0 + 3700 * S)            # the 1 h window now starts after "a" and "b"
    one_hour, one_day = f.state.counter_features([1])["counts_1h"][0], f.state.counter_features([1])["counts_1d"][0]
    assert one_hour == [0, 0, 0, 2, 0, 0, 2, 0, 0]
    assert one_day == [1, 1, 0, 2, 0, 0, 3, 1, 0]


def test_messages_below_the_applied_offset_are_ignored() -> None:
    f = Feed()
    f.event("impression", "i1", T0)
    f.state.apply(KIND_IMPRESSION, 0, ev("impression", "i1-again", T0), NOW)
    assert f.state.counts["replayed"] == 1 and f.state.counts["accepted"] == 1


def test_fast_validation_agrees_with_the_schema_module() -> None:
    rng = random.Random(3)
    base = json.loads(ev("impression", "e", T0, scenario="search", query="oat milk"))
    mutations = [
        lambda d: d, lambda d: d.update(scenario="rec", query=""), lambda d: d.pop("query"),
        lambda d: d.update(scenario="rec"), lambda d: d.update(user_id=True), lambda d: d.update(item_id=-1),
        lambda d: d.update(ts=1.5), lambda d: d.update(ts=10), lambda d: d.update(event_id=""),
        lambda d: d.update(extra=1), lambda d: d.update(query="  "), lambda d: d.update(schema_version=2),
        lambda d: d.update(event_type="view"), lambda d: d.update(position=None), lambda d: d.pop("ts"),
        lambda d: d.update(request_id=5), lambda d: d.update(schema_version=True),
    ]
    for _ in range(400):
        d = json.loads(json.dumps(base))
        for m in rng.sample(mutations, rng.randint(0, 3)):
            m(d)
        fast = _fast_event(d)
        try:
            slow = validate_event(d)
        except EventValidationError:
            slow = None
        if fast is not None:
            assert fast == slow, d
        what, obj = decode(json.dumps(d).encode())
        assert (what == "event") == (slow is not None), d
