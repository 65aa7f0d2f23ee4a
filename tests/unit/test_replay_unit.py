"""Replay with a fake producer: order, topics, keys, payloads, limit, pacing, invalid rows."""
from __future__ import annotations

import dataclasses as dc
import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from usr.data.events import EVENT_LOG_SCHEMA, validate_event
from usr.data.replay import replay
from usr.data.sim.config import SimConfig
from usr.data.sim.run import simulate

TOPICS = SimpleNamespace(impressions="t.imp", clicks="t.clk", orders="t.ord", dead_letter="t.dlq")


class FakeFuture:
    def __init__(self, fail: bool):
        self.fail = fail

    def add_errback(self, fn):
        if self.fail:
            fn(RuntimeError("broker said no"))
        return self


class FakeProducer:
    def __init__(self, fail_every: int = 0):
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []
        self.flushed = 0
        self.fail_every = fail_every

    def send(self, topic, value=None, key=None, timestamp_ms=None):
        self.sent.append((topic, value, key, timestamp_ms))
        return FakeFuture(bool(self.fail_every) and len(self.sent) % self.fail_every == 0)

    def flush(self, timeout=None):
        self.flushed += 1


class FakeClock:
    def __init__(self):
        self.t = 100.0
        self.slept = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        assert s > 0
        self.slept += s
        self.t += s


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay_sim")
    cfg = SimConfig(n_users=150, n_items=400, days=1, seed=4)
    simulate(cfg.replace(history=dc.replace(cfg.history, warmup_days=1)), out, progress=False)
    return out


def test_replay_sends_every_event_in_time_order_to_its_topic(sim_dir):
    log = pq.read_table(sim_dir / "events.parquet").to_pandas()
    prod = FakeProducer()
    summary = replay(sim_dir, prod, TOPICS, progress=False)
    assert summary.events == len(log) == len(prod.sent) and summary.invalid == 0 and summary.failed == 0
    assert prod.flushed == 1
    expected_topic = {"impression": "t.imp", "click": "t.clk", "order": "t.ord"}
    events = [validate_event(v) for _, v, _, _ in prod.sent]
    assert [e.event_id for e in events] == log.event_id.tolist()
    assert [t for t, _, _, _ in prod.sent] == [expected_topic[e.event_type] for e in events]
    assert all(k == str(e.user_id).encode() for (_, _, k, _), e in zip(prod.sent, events))
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert all(ts is None for _, _, _, ts in prod.sent)
    assert summary.by_type == log.event_type.value_counts().to_dict()
    rec = next(json.loads(v) for _, v, _, _ in prod.sent if b'"rec"' in v)
    assert "query" not in rec


def test_limit_event_time_and_summary(sim_dir):
    prod = FakeProducer()
    summary = replay(sim_dir, prod, TOPICS, limit=25, event_time=True, progress=False)
    assert summary.events == len(prod.sent) == 25
    assert all(ts == validate_event(v).ts for _, v, _, ts in prod.sent)
    d = summary.to_dict()
    assert {"events", "seconds", "events_per_s"} <= set(d) and d["events_per_s"] > 0


def test_rate_paces_the_sends(sim_dir):
    clock = FakeClock()
    prod = FakeProducer()
    summary = replay(sim_dir, prod, TOPICS, rate=50.0, limit=101, progress=False, clock=clock, sleep=clock.sleep)
    # event i is due at i / rate: the last of 101 events at 2.0 s
    assert clock.slept == pytest.approx(2.0)
    assert summary.seconds == pytest.approx(2.0)
    assert summary.events_per_s == pytest.approx(50.5)
    with pytest.raises(ValueError):
        replay(sim_dir, prod, TOPICS, rate=0, progress=False)


def test_invalid_rows_are_skipped_and_reported(tmp_path):
    rows = [
        dict(schema_version=1, event_type="impression", event_id="a", request_id="r", user_id=1, item_id=2,
             scenario="search", query="milk", position=0, ts=1_709_550_000_000),
        dict(schema_version=1, event_type="impression", event_id="b", request_id="r", user_id=1, item_id=3,
             scenario="search", query="", position=1, ts=1_709_550_000_001),       # search without query
        dict(schema_version=1, event_type="cart", event_id="c", request_id="r", user_id=1, item_id=3,
             scenario="rec", query="", position=1, ts=1_709_550_000_002),          # unknown type
    ]
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_LOG_SCHEMA), path)
    prod = FakeProducer()
    summary = replay(path, prod, TOPICS, progress=False)
    assert summary.events == 1 and summary.invalid == 2
    assert "query" in summary.invalid_examples[0] and "event_type" in summary.invalid_examples[1]
    # without validation the search row without query goes out as is; the unknown type still has no topic
    prod = FakeProducer()
    summary = replay(path, prod, TOPICS, progress=False, validate=False)
    assert summary.events == 2 and summary.invalid == 1


def test_failed_sends_are_counted(sim_dir):
    summary = replay(sim_dir, FakeProducer(fail_every=10), TOPICS, limit=100, progress=False)
    assert summary.failed == 10


def test_cli_reports_missing_log(tmp_path, capsys):
    from usr.cli import main
    assert main(["replay", str(tmp_path)]) == 2
    assert "no event log" in capsys.readouterr().out
