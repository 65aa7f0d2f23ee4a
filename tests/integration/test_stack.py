"""The foundation against the real services: Kafka, Feast (SQLite and Redis), Triton."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import torch

from tests.conftest import stack_config
from usr.config import Config
from usr.stack import manager, process

pytestmark = pytest.mark.integration


def test_every_service_reports_healthy(stack: Config) -> None:
    statuses = manager.status(stack)
    assert {"kafka", "feast", "triton", "gateway"} <= {s.name for s in statuses}
    assert all(s.healthy for s in statuses), [(s.name, s.detail) for s in statuses]
    kafka = next(s for s in statuses if s.name == "kafka")
    assert kafka.mode == "apache" and kafka.pid and kafka.rss_mb > 50


def test_stack_topics_exist_with_configured_partitions(stack: Config) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=stack.kafka.bootstrap)
    try:
        for topic in (stack.kafka.topics.impressions, stack.kafka.topics.dead_letter):
            assert len(consumer.partitions_for_topic(topic)) == stack.kafka.topics.partitions
    finally:
        consumer.close()


def test_message_is_consumed_by_a_group_joining_in_seconds(stack: Config) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic, payload = stack.kafka.topics.orders, uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap, acks="all")
    producer.send(topic, key=b"u2", value=payload).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=stack.kafka.bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
                             auto_offset_reset="earliest", session_timeout_ms=stack.kafka.session_timeout_ms,
                             heartbeat_interval_ms=stack.kafka.heartbeat_interval_ms)
    t0 = time.monotonic()
    try:
        records = {}
        while not records and time.monotonic() - t0 < 30:
            records = consumer.poll(timeout_ms=200)
        joined_s = time.monotonic() - t0
    finally:
        consumer.close()
    assert payload in [r.value for batch in records.values() for r in batch], "message not consumed within 30 s"
    assert joined_s < 5.0, f"group join + first fetch took {joined_s:.1f}s"


def test_feast_write_is_read_back_from_sqlite(stack: Config) -> None:
    from features.store import open_store, probe_roundtrip

    ok, detail = probe_roundtrip(open_store(stack), value=424242)
    assert ok, detail


def test_feast_write_is_read_back_from_redis(stack: Config, tmp_path) -> None:
    from features.store import apply_definitions, probe_roundtrip

    # Redis as the online store; Kafka and Triton are the session's, used as external services
    config = stack_config(tmp_path, USR__FEAST__ONLINE_STORE="redis",
                          USR__KAFKA__MODE="external", USR__KAFKA__BOOTSTRAP_SERVERS=stack.kafka.bootstrap,
                          USR__TRITON__MODE="external", USR__TRITON__GRPC_PORT=str(stack.triton.grpc_port),
                          USR__GATEWAY__ENABLED="false", USR__STREAMS__WORKERS="0")
    try:
        statuses = manager.up(config)
        assert {s.name: s.healthy for s in statuses}["redis"]
        ok, detail = probe_roundtrip(apply_definitions(config), value=777)
        assert ok, detail
        assert "redis" in next(s.detail for s in manager.status(config) if s.name == "feast")
    finally:
        stopped = manager.down(config)
    assert stopped == ["redis"]  # external Kafka and Triton were left alone
    assert not process.port_listening(config.redis.port)


def test_triton_answers_health_and_inference_of_a_torchscript_model(stack: Config) -> None:
    import tritonclient.grpc as grpcclient

    from usr.stack.tiny_model import TinyModel

    client = grpcclient.InferenceServerClient(stack.triton.grpc_url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("tiny", [inp], outputs=[grpcclient.InferRequestedOutput("y"),
                                                  grpcclient.InferRequestedOutput("p")])
    expected_y, expected_p = TinyModel()(torch.from_numpy(x))
    np.testing.assert_allclose(result.as_numpy("y").ravel(), expected_y.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("p").ravel(), expected_p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_up_from_nothing_then_down_leaves_nothing_behind(tmp_path) -> None:
    """A second, independent stack: up from an empty run dir, status healthy, down clean."""
    config = stack_config(tmp_path / "run")
    ports = [config.kafka.port, config.kafka.controller_port, config.triton.grpc_port,
             config.triton.http_port, config.triton.metrics_port, config.gateway.port, config.gateway.metrics_port]
    try:
        t0 = time.monotonic()
        manager.up(config)
        up_s = time.monotonic() - t0
        statuses = manager.status(config)
        assert all(s.healthy for s in statuses), [(s.name, s.detail) for s in statuses]
        pids = [s.pid for s in statuses if s.pid]
        assert {s.name for s in statuses if s.pid} >= {"kafka", "triton", "gateway"}
        groups = {pid: process._group_members(pid) for pid in pids}
        assert len(groups[next(s.pid for s in statuses if s.name == "triton")]) >= 2  # host + tritonserver
        print(f"up to healthy: {up_s:.1f}s; rss MiB: {[(s.name, s.rss_mb) for s in statuses]}")
    finally:
        manager.down(config)
    for pid, members in groups.items():
        for member in members:
            assert not process.pid_alive(member), f"process {member} of group {pid} survived down"
    busy = [p for p in ports if process.port_listening(p)]
    assert not busy, f"ports still listening after down: {busy}"
    after = {s.name: s for s in manager.status(config)}
    assert not after["kafka"].healthy and not after["triton"].healthy
    assert after["kafka"].detail == "not running"


def test_bad_configuration_key_fails_startup_naming_it(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka:\n  prot: 9092\n")
    proc = subprocess.run([sys.executable, "-m", "usr.cli", "--config", str(bad), "stack", "up"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "kafka.prot" in proc.stderr and "unknown key" in proc.stderr
