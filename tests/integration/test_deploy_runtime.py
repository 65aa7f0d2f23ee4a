"""The deployment's runtime helpers against the real local stack (Apache Kafka, Feast):
``usr deploy init`` (topics, Feast definitions; idempotent) and the exporter's consumer
lag and feature freshness, measured from real offsets and timestamps."""
from __future__ import annotations

import time
import urllib.request
import uuid

import pytest

from tests.conftest import free_ports
from usr.config import Config

pytestmark = pytest.mark.integration


def _with_topics(stack: Config, partitions: int = 2) -> Config:
    """The stack's config with fresh topic names (tests stay independent of other tests' events)."""
    tag = uuid.uuid4().hex[:8]
    topics = stack.kafka.topics.model_copy(update={
        "impressions": f"t-{tag}.impressions", "clicks": f"t-{tag}.clicks", "orders": f"t-{tag}.orders",
        "dead_letter": f"t-{tag}.dead-letter", "partitions": partitions})
    kafka = stack.kafka.model_copy(update={"topics": topics})
    streams = stack.streams.model_copy(update={"app_id": f"usr-streams-{tag}"})
    return stack.model_copy(update={"kafka": kafka, "streams": streams})


def test_init_creates_topics_and_applies_feast_idempotently(stack: Config) -> None:
    from kafka.admin import KafkaAdminClient

    from usr.deploy.bootstrap import init
    from usr.kafka_client import client_kwargs, topic_names

    config = _with_topics(stack, partitions=3)
    first = init(config, timeout_s=60)
    assert sorted(first["topics_created"]) == sorted(topic_names(config.kafka))
    second = init(config, timeout_s=60)
    assert second["topics_created"] == []
    admin = KafkaAdminClient(**client_kwargs(config.kafka))
    try:
        described = {t.get("topic", t.get("name")): len(t["partitions"]) for t in admin.describe_topics(topic_names(config.kafka))}
    finally:
        admin.close()
    assert described == {n: 3 for n in topic_names(config.kafka)}
    from features.store import open_store

    assert "user_history" in {v.name for v in open_store(config).list_feature_views()}


def test_exporter_measures_lag_and_staleness(stack: Config) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    from prometheus_client import generate_latest

    from usr.deploy.bootstrap import create_topics
    from usr.deploy.exporter import Exporter, measure
    from usr.kafka_client import client_kwargs

    config = _with_topics(stack)
    create_topics(config)
    t = config.kafka.topics
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(acks="all", **client_kwargs(config.kafka))
    # impressions p0: 10 events, the first 4 processed; the oldest pending one is 90 s old
    for i in range(10):
        producer.send(t.impressions, value=b"{}", partition=0, timestamp_ms=now_ms - 120_000 + i * 10_000)
    # clicks p1: 3 events, all processed; orders: nothing
    for i in range(3):
        producer.send(t.clicks, value=b"{}", partition=1, timestamp_ms=now_ms - 5_000)
    producer.flush()
    producer.close()
    group = KafkaConsumer(group_id=config.streams.app_id, enable_auto_commit=False, **client_kwargs(config.kafka))
    group.commit({TopicPartition(t.impressions, 0): OffsetAndMetadata(4, "", -1),
                  TopicPartition(t.clicks, 1): OffsetAndMetadata(3, "", -1)})
    group.close()

    snap = measure(config)
    by = {(p.topic, p.partition): p for p in snap.partitions}
    assert set(by) == {(topic, p) for topic in (t.impressions, t.clicks, t.orders) for p in (0, 1)}
    assert by[(t.impressions, 0)].lag == 6 and by[(t.impressions, 0)].end == 10
    assert by[(t.impressions, 0)].oldest_pending_ts_ms == now_ms - 120_000 + 40_000
    assert 80 <= by[(t.impressions, 0)].staleness_s(int(time.time() * 1000)) <= 100
    assert by[(t.clicks, 1)].lag == 0 and by[(t.clicks, 1)].staleness_s(now_ms) == 0.0
    assert all(by[(t.orders, p)].lag == 0 for p in (0, 1))

    # served over HTTP as Prometheus text, with the retrain textfile passed through
    textfile = config.run.dir / "retrain-test.prom"
    textfile.write_text('# HELP usr_retrain_serving_version v\n# TYPE usr_retrain_serving_version gauge\n'
                        'usr_retrain_serving_version 7.0\n')
    exporter = Exporter(config, retrain_textfile=textfile)
    assert exporter.round()
    text = generate_latest(exporter.registry).decode()
    assert f'usr_streams_consumer_lag{{partition="0",topic="{t.impressions}"}} 6.0' in text
    assert "usr_retrain_serving_version 7.0" in text

    from prometheus_client import start_http_server

    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=exporter.registry)
    try:
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        from usr.deploy.probe import probe

        assert probe(config, "exporter", port=port)[0]
    finally:
        server.shutdown()
    assert "usr_streams_staleness_seconds" in scraped and "usr_exporter_last_success_timestamp_seconds" in scraped


def test_exporter_counts_failed_rounds(stack: Config) -> None:
    from usr.deploy.exporter import Exporter

    (dead,) = free_ports(1)
    kafka = stack.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{dead}"})
    exporter = Exporter(stack.model_copy(update={"kafka": kafka}))
    assert not exporter.round()
    assert exporter.registry.get_sample_value("usr_exporter_errors_total") == 1.0


def test_container_probes_against_the_running_stack(stack: Config) -> None:
    # the same probes the compose health checks and Kubernetes readiness probes run
    from usr.deploy.probe import probe

    ok, detail = probe(stack, "gateway")
    assert ok and "SERVING" in detail, detail
    if stack.streams.workers > 0:
        ok, detail = probe(stack, "streams", index=0)
        assert ok, detail
    (dead,) = free_ports(1)
    ok, detail = probe(stack, "streams", port=dead, timeout_s=1.0)
    assert not ok and "refused" in detail.lower()


def test_compose_kafka_settings_boot_a_real_broker(tmp_path) -> None:
    """The properties the apache/kafka image derives from docker-compose.yml, with the
    service's host name and ports swapped for loopback ones, format and start Apache Kafka
    (the version of the config, from the local stack's jar cache) and serve topics."""
    import shutil
    import signal
    import subprocess

    import yaml

    from tests.conftest import stack_config
    from tests.unit.deploy_checks import kafka_image_properties
    from usr.deploy import render
    from usr.kafka_client import broker_answers, ensure_topics

    if shutil.which("java") is None:
        pytest.skip("no JDK")
    production = render.load_production_config()
    local = stack_config(tmp_path / "run")
    libs = local.run.cache_dir / f"kafka-{production.kafka.version}" / "libs"
    if not (libs.parent / ".complete").exists():
        pytest.skip(f"Kafka {production.kafka.version} jars not cached (usr stack up fetches them)")
    env = yaml.safe_load(render.COMPOSE_FILE.read_text())["services"][production.kafka.host]["environment"]
    port, controller = free_ports(2)
    swap = {f"{production.kafka.host}:{production.kafka.port}": f"127.0.0.1:{port}",
            f"{production.kafka.host}:{production.kafka.controller_port}": f"127.0.0.1:{controller}",
            f"://:{production.kafka.port}": f"://127.0.0.1:{port}",
            f"://:{production.kafka.controller_port}": f"://127.0.0.1:{controller}"}
    props = {}
    for key, value in kafka_image_properties(env).items():
        for old, new in swap.items():
            value = value.replace(old, new)
        props[key] = value
    assert not any(f"{production.kafka.host}:" in v for v in props.values()), props
    props["log.dirs"] = str(tmp_path / "data")
    server = tmp_path / "server.properties"
    server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    classpath = f"{libs}/*"
    subprocess.run(["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", env["CLUSTER_ID"],
                    "-c", str(server)], check=True, capture_output=True, text=True, timeout=120)
    log = open(tmp_path / "kafka.log", "w")
    broker = subprocess.Popen(["java", "-Xmx384m", "-cp", classpath, "kafka.Kafka", str(server)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        kafka = local.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}",
                                               "topics": production.kafka.topics})
        deadline = time.monotonic() + 90
        ok, detail = False, ""
        while time.monotonic() < deadline and broker.poll() is None:
            ok, detail = broker_answers(kafka)
            if ok:
                break
            time.sleep(1)
        assert ok, f"{detail}\n{(tmp_path / 'kafka.log').read_text()[-2000:]}"
        assert sorted(ensure_topics(kafka)) == sorted([production.kafka.topics.impressions,
                                                       production.kafka.topics.clicks,
                                                       production.kafka.topics.orders,
                                                       production.kafka.topics.dead_letter])
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait(10)
        log.close()
