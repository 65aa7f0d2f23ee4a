"""The stream workers against the real broker and online store: a simulated log in,
labelled rows and online features out, equal to the batch computation over the same
log (streams.offline) whatever happens to the workers."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from streams.publish import publish_log, send_watermarks
from tests.integration.streams_fixtures import (Worker, assert_online_equals, assert_rows_equal, dead_letters, prepare,
                                                reference, streams_config, wait_done, workers)
from tests.unit.streams_harness import simulate_small
from usr.config import Config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_small(tmp_path_factory.mktemp("sim"), users=600, items=1000, days=2, seed=21)


def _total(sim_dir: Path) -> int:
    return pq.ParquetFile(sim_dir / "events.parquet").metadata.num_rows


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(stack: Config, sim_dir: Path, tmp_path) -> None:
    # small batches and frequent flushes: many checkpoints, so the kill lands between them
    config = streams_config(stack, tmp_path, USR__STREAMS__MAX_BATCH_EVENTS="300",
                            USR__STREAMS__FLUSH_INTERVAL_S="0.05", USR__STREAMS__STATS_FLUSH_INTERVAL_S="0.1")
    prepare(config, sim_dir)
    publish_log(config, sim_dir)
    total = _total(sim_dir)
    first = Worker(config, 0)
    try:
        first.wait_ready()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = first.status()
            if st and st["events"] >= 0.3 * total:
                break
            time.sleep(0.02)
        first.kill9()
    finally:
        first.stop()
    assert st["events"] < total, "the worker finished before it could be killed"
    killed_at = st["events"]
    with workers(config, 1) as ws:
        done = wait_done(config, ws)
    ref = reference(config, sim_dir)
    assert_rows_equal(config, ref)
    assert_online_equals(config, ref)
    # the restarted worker resumed from a checkpoint: it re-read part, not all, of the log
    assert 0 < done[0]["events"] < 2 * total + 100, (killed_at, done[0]["events"])
    assert dead_letters(config, timeout_s=3) == {}


def test_two_workers_share_the_partitions_and_equal_one(stack: Config, sim_dir: Path, tmp_path) -> None:
    config = streams_config(stack, tmp_path)
    prepare(config, sim_dir)
    with workers(config, 2) as ws:
        for w in ws:
            w.wait_ready()
        # answering is not owning: publish once the group has split the partitions between both
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owned = [set((w.status() or {}).get("stage1") or {}) for w in ws]
            if all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == config.kafka.topics.partitions:
                break
            time.sleep(0.2)
        publish_log(config, sim_dir)
        done = wait_done(config, ws)
    owned = [set(s["stage1"]) for s in done]
    assert all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == {"0", "1", "2", "3"}
    assert all(s["events"] > 0 for s in done)
    ref = reference(config, sim_dir)
    assert_rows_equal(config, ref)
    assert_online_equals(config, ref)


def test_whole_log_replayed_twice_equals_once_with_the_faust_driver(stack: Config, sim_dir: Path, tmp_path) -> None:
    config = streams_config(stack, tmp_path, USR__STREAMS__DRIVER="faust")
    prepare(config, sim_dir)
    publish_log(config, sim_dir, close=False)
    publish_log(config, sim_dir, close=True)    # every event a second time, then the end-of-log markers
    with workers(config, 1) as ws:
        ws[0].wait_ready()
        done = wait_done(config, ws)
    assert done[0]["driver"] == "faust"
    counts = [p["counts"] for p in done[0]["stage1"].values()]
    # each second copy is a duplicate (its id still remembered: dedup_retention_s behind the
    # watermark) or, older than that, late (a dead letter); neither changes a feature or a row
    dups, late = sum(c.get("duplicates", 0) for c in counts), sum(c.get("dead_letters", 0) for c in counts)
    assert dups > 0 and late > 0 and dups + late == _total(sim_dir)
    ref = reference(config, sim_dir)
    assert_rows_equal(config, ref)
    assert_online_equals(config, ref)


def test_malformed_events_reach_the_dead_letter_topic_and_the_worker_goes_on(stack: Config, sim_dir: Path,
                                                                             tmp_path) -> None:
    from kafka import KafkaProducer

    config = streams_config(stack, tmp_path)
    prepare(config, sim_dir)
    t = config.kafka.topics
    # the day before the simulated log starts
    ok = {"schema_version": 1, "event_type": "impression", "event_id": "e-ok", "request_id": "r1", "user_id": 7,
          "item_id": 3, "scenario": "rec", "position": 0, "ts": 1_709_424_000_000}
    bad = {
        "bad json": (t.impressions, b"{this is not json"),
        "not utf-8": (t.impressions, b"\xff\xfe\x00"),
        "missing field": (t.impressions, json.dumps({k: v for k, v in ok.items() if k != "item_id"}).encode()),
        "wrong type": (t.impressions, json.dumps({**ok, "event_id": "e1", "user_id": "seven"}).encode()),
        "unknown scenario": (t.impressions, json.dumps({**ok, "event_id": "e2", "scenario": "email"}).encode()),
        "search without query": (t.impressions, json.dumps({**ok, "event_id": "e3", "scenario": "search"}).encode()),
        "unknown field": (t.impressions, json.dumps({**ok, "event_id": "e4", "price": 3}).encode()),
        "wrong topic": (t.clicks, json.dumps({**ok, "event_id": "e5"}).encode()),
        "ts in seconds": (t.impressions, json.dumps({**ok, "event_id": "e6", "ts": 1_709_540_000}).encode()),
        "order without a click": (t.orders, json.dumps({**ok, "event_type": "order", "event_id": "o1",
                                                        "request_id": "never-clicked"}).encode()),
        "late": (t.impressions, json.dumps({**ok, "event_id": "e7", "ts": ok["ts"] - 3_600_000}).encode()),
    }
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap, acks="all")
    sent = {}
    producer.send(t.impressions, key=b"7", value=json.dumps(ok).encode()).get(10)
    for name, (topic, value) in bad.items():
        md = producer.send(topic, key=b"7", value=value).get(10)
        sent[f"{md.topic}:{md.partition}:{md.offset}"] = name
    producer.close()
    with workers(config, 1) as ws:
        ws[0].wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(
                p["counts"].get("dead_letters", 0) for p in (ws[0].status() or {"stage1": {}})["stage1"].values()) < 10:
            time.sleep(0.2)
        # the order's click can no longer come once the watermark passes it
        send_watermarks(config, ok["ts"] + 3_600_000)
        publish_log(config, sim_dir)    # ... and the worker still processes a whole log afterwards
        wait_done(config, ws)
    got = dead_letters(config)
    # the order without a click is reported at its own offset on the orders topic
    assert set(got) == set(sent), (sorted(got), sorted(sent))
    for key, name in sent.items():
        d = got[key]
        assert d["reason"] and d["field"] and d["topic"] == key.split(":")[0], (name, d)
    fields = {sent[k]: got[k]["field"] for k in sent}
    assert fields["bad json"] == "$" and fields["missing field"] == "item_id" and fields["wrong type"] == "user_id"
    assert fields["unknown scenario"] == "scenario" and fields["order without a click"] == "click"
    assert fields["late"] == "ts" and "late" in got[next(k for k, v in sent.items() if v == "late")]["reason"]
    assert got[next(k for k, v in sent.items() if v == "not utf-8")]["payload_encoding"] == "base64"
    log = pd.concat([pd.DataFrame([{**ok, "query": ""}]), pq.read_table(sim_dir / "events.parquet").to_pandas()],
                    ignore_index=True)
    ref = reference(config, sim_dir, log=log)
    assert_rows_equal(config, ref)
