"""Replay a small simulated log into a real Kafka broker and read every event back."""
from __future__ import annotations

import dataclasses as dc
import time
import uuid
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from usr.data.events import validate_event
from usr.data.sim.config import SimConfig
from usr.data.sim.run import simulate

pytestmark = pytest.mark.integration


def test_replay_round_trip(kafka_bootstrap, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from usr.data.replay import replay

    cfg = SimConfig(n_users=100, n_items=300, days=1, seed=8)
    simulate(cfg.replace(history=dc.replace(cfg.history, warmup_days=1)), tmp_path, progress=False)
    log = pq.read_table(tmp_path / "events.parquet").to_pandas()

    suffix = uuid.uuid4().hex[:8]
    topics = SimpleNamespace(impressions=f"it.imp.{suffix}", clicks=f"it.clk.{suffix}",
                             orders=f"it.ord.{suffix}", dead_letter=f"it.dlq.{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)
                         for t in (topics.impressions, topics.clicks, topics.orders)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1, linger_ms=5)
    summary = replay(tmp_path, producer, topics, progress=False)
    producer.close()
    assert summary.events == len(log) and summary.failed == 0

    consumer = KafkaConsumer(topics.impressions, topics.clicks, topics.orders, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, group_id=f"it-{suffix}")
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(log) and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=1000).values():
            got.extend(recs)
    consumer.close()
    assert len(got) == len(log)
    events = [validate_event(m.value) for m in got]
    assert all(m.key == str(e.user_id).encode() for m, e in zip(got, events))
    assert sorted(e.event_id for e in events) == sorted(log.event_id)
    # per user (one partition per key) the events arrive in time order
    by_user: dict[int, list[int]] = {}
    for m, e in zip(got, events):
        if m.topic == topics.impressions:
            by_user.setdefault(e.user_id, []).append(e.ts)
    assert all(ts == sorted(ts) for ts in by_user.values())
