"""The ranking gateway through real gRPC, with the local Triton and Kafka."""
from __future__ import annotations

import json
import time
import uuid

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.client import RankingClient
from gateway.proto import SERVICE_NAME, pb
from gateway.server import build_service
from tests.conftest import stack_config
from tests.integration.gateway_fixtures import gateway_config, publish_model, running_gateway, wait_model_version
from usr.config import Config
from usr.stack import manager

pytestmark = pytest.mark.integration


class CatalogFeatures:
    """An in-memory feature source with one known user and a small catalog."""

    def user(self, user_id):
        if user_id != 42:
            return {}
        return {"user_segment": 3, "user_level": 2, "hist_item_id": [11, 12, 13], "hist_cate2": [5, 5, 6],
                "hist_brand": [7, 7, 8], "hist_source": [1, 2, 2], "hist_action": [1, 1, 2]}

    def items(self, item_ids):
        return {int(i): {"cate1": 1 + int(i) % 3, "cate2": 5 + int(i) % 4, "brand": 7 + int(i) % 5,
                         "price_bucket": 1 + int(i) % 6, "popularity": 1.0 / int(i)} for i in item_ids}


@pytest.fixture(scope="module")
def served(stack: Config):
    version = publish_model(stack.triton.model_repository)
    wait_model_version(stack, version)
    config = gateway_config(stack)
    service = build_service(config, features=CatalogFeatures())
    with running_gateway(config, service) as address:
        yield config, address, version


def test_rank_for_a_known_user(served) -> None:
    config, address, version = served
    candidates = list(range(100, 300))
    with RankingClient(address) as client:
        reply = client.rank(42, "rec", candidates)
        search = client.rank(42, "search", candidates[:20], query="fresh milk")
    assert not reply.fallback and reply.model_version == str(version)
    assert sorted(i.item_id for i in reply.items) == candidates
    scores = [i.score for i in reply.items]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    assert all(0 < i.ctcvr <= i.ctr < 1 for i in reply.items)
    assert [i.position for i in reply.items] == list(range(200))
    assert reply.objective == "ctcvr" and all(i.score == i.ctcvr for i in reply.items)
    assert not search.fallback and len(search.items) == 20
    # the query changes the scores: the model sees it
    rec_scores = {i.item_id: i.ctr for i in reply.items}
    assert any(abs(rec_scores[i.item_id] - i.ctr) > 1e-6 for i in search.items)


def test_unknown_user_and_items_get_defaults(served) -> None:
    _, address, _ = served
    with RankingClient(address) as client:
        reply = client.rank(987654321, "rec", [10**12, 10**12 + 1])
    assert not reply.fallback and len(reply.items) == 2


@pytest.mark.parametrize("kwargs,needle", [
    (dict(user_id=42, scenario="rec", candidates=[]), "candidates"),
    (dict(user_id=42, scenario="rec", candidates=list(range(1, 1200))), "limit"),
    (dict(user_id=42, scenario="shop", candidates=[1]), "scenario"),
    (dict(user_id=42, scenario="search", candidates=[1]), "query"),
    (dict(user_id=-1, scenario="rec", candidates=[1]), "user_id"),
    (dict(user_id=42, scenario="rec", candidates=[1, 0]), "candidates"),
])
def test_invalid_requests_get_invalid_argument(served, kwargs, needle) -> None:
    _, address, _ = served
    with grpc.insecure_channel(address) as channel:
        from gateway.proto import pb_grpc

        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.RankingStub(channel).Rank(pb.RankRequest(**kwargs), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_health_and_reflection_answer(served) -> None:
    _, address, _ = served
    with grpc.insecure_channel(address) as channel:
        for name in ("", SERVICE_NAME):
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                   timeout=5))
    names = {s.name for s in responses[0].list_services_response.service}
    assert SERVICE_NAME in names and "grpc.health.v1.Health" in names


def test_metrics_are_exported(served) -> None:
    import urllib.request

    config, address, _ = served
    with RankingClient(address) as client:
        client.rank(42, "rec", [1, 2, 3])
    text = urllib.request.urlopen(f"http://{config.gateway.host}:{config.gateway.metrics_port}/metrics",
                                  timeout=5).read().decode()
    assert "usr_gateway_rank_seconds_bucket" in text and 'usr_gateway_requests_total{outcome="ok"' in text
    assert "usr_gateway_item_cache_total" in text


def test_served_list_is_logged_to_kafka(served) -> None:
    from kafka import KafkaConsumer

    config, address, _ = served
    request_id = f"log-{uuid.uuid4().hex[:8]}"
    with RankingClient(address) as client:
        reply = client.rank(42, "search", [5, 6, 7, 8], query="eggs", request_id=request_id, log_impressions=True)
    consumer = KafkaConsumer(config.kafka.topics.impressions, bootstrap_servers=config.kafka.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             group_id=f"t-{uuid.uuid4().hex[:6]}")
    try:
        events = []
        for m in consumer:
            e = json.loads(m.value)
            if e["request_id"] == request_id:
                events.append(e)
                assert m.key == b"42"
            if len(events) == 4:
                break
    finally:
        consumer.close()
    assert [(e["item_id"], e["position"]) for e in sorted(events, key=lambda e: e["position"])] == \
        [(i.item_id, i.position) for i in reply.items]
    assert all(e["event_type"] == "impression" and e["scenario"] == "search" and e["query"] == "eggs" for e in events)


def test_fallback_when_triton_stops_with_no_failed_call(stack: Config, tmp_path) -> None:
    """A Triton of its own, stopped while traffic runs: every call still answers."""
    own = stack_config(tmp_path, USR__KAFKA__MODE="external", USR__KAFKA__BOOTSTRAP_SERVERS=stack.kafka.bootstrap,
                       USR__GATEWAY__ENABLED="false", USR__STREAMS__WORKERS="0")
    version = publish_model(own.triton.model_repository, seed=1)
    manager.up(own)
    try:
        wait_model_version(own, version)
        config = gateway_config(own, triton_timeout_ms=300)
        service = build_service(config, features=CatalogFeatures())
        replies, failures = [], []
        with running_gateway(config, service, log_impressions=False) as address, RankingClient(address) as client:
            stop_at = time.monotonic() + 30
            stopped = False
            while time.monotonic() < stop_at:
                try:
                    replies.append(client.rank(42, "rec", [3, 1, 2]))
                except grpc.RpcError as exc:
                    failures.append(exc)
                if len(replies) == 20 and not stopped:
                    manager.down(own)  # Triton goes away mid-traffic
                    stopped = True
                if stopped and len(replies) > 20 and replies[-1].fallback and len(replies) > 40:
                    break
    finally:
        manager.down(own)
    assert not failures, failures[:1]
    assert not replies[0].fallback and replies[0].model_version == str(version)
    assert replies[-1].fallback and replies[-1].fallback_reason.startswith("model server")
    # the fallback ranks by popularity (1/item id in the fake): item 1 first
    assert [i.item_id for i in replies[-1].items] == [1, 2, 3] and replies[-1].model_version == ""


def test_request_can_name_another_model_for_ab_tests(served, stack: Config) -> None:
    _, address, _ = served
    version_b = publish_model(stack.triton.model_repository, name="usr_b", variant="MMoE", seed=5)
    wait_model_version(stack.model_copy(update={"triton": stack.triton.model_copy(update={"model_name": "usr_b"})}),
                       version_b)
    with RankingClient(address) as client:
        a = client.rank(42, "rec", [1, 2, 3, 4])
        b = client.rank(42, "rec", [1, 2, 3, 4], model="usr_b")
        with pytest.raises(grpc.RpcError) as err:
            client.rank(42, "rec", [1, 2], model="no_such_model")
    assert not a.fallback and not b.fallback
    assert [i.ctr for i in a.items] != [i.ctr for i in b.items]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no_such_model" in err.value.details()
