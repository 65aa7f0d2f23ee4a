"""Gateway logic without servers: validation, input tensors equal to the trainer's,
objective, item cache, ranking and fallback with fakes."""
from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pytest

from features.spec import FeatureSpec
from features.tensors import build_input_arrays
from gateway.online_features import ItemCache
from gateway.proto import pb
from gateway.rows import candidate_columns
from gateway.scorer import Scores
from gateway.server import RankingService, objective_scores
from gateway.validation import InvalidRequest, validate
from model.synthetic import random_impressions
from usr.config import load_config


def _req(**kw):
    base = dict(user_id=7, scenario="rec", candidates=[1, 2, 3])
    base.update(kw)
    return pb.RankRequest(**base)


@pytest.mark.parametrize("kwargs,field", [
    (dict(candidates=[]), "candidates"),
    (dict(candidates=list(range(1, 1002))), "candidates"),
    (dict(candidates=[1, 1]), "candidates"),
    (dict(candidates=[1, -4]), "candidates"),
    (dict(scenario="feed"), "scenario"),
    (dict(scenario="search"), "query"),
    (dict(scenario="search", query="   "), "query"),
    (dict(query="milk"), "query"),
    (dict(user_id=0), "user_id"),
    (dict(user_id=-3), "user_id"),
    (dict(context=pb.Context(hour=24)), "context.hour"),
    (dict(context=pb.Context(weekday=7)), "context.weekday"),
    (dict(scenario="search", query="milk", query_terms=[0]), "query_terms"),
    (dict(request_id="x" * 200), "request_id"),
    (dict(context=pb.Context(ts_ms=1234)), "context.ts_ms"),
    (dict(model="../etc"), "model"),
])
def test_invalid_requests_name_the_field(kwargs, field) -> None:
    with pytest.raises(InvalidRequest) as err:
        validate(_req(**kwargs), max_candidates=1000)
    assert err.value.field == field and field in str(err.value)


def test_valid_request_defaults() -> None:
    q = validate(_req(scenario="search", query="Whole Milk"), max_candidates=1000, now_s=0)
    assert q.query_id > 0 and q.hour == 0 and q.weekday == 3  # 1970-01-01 was a Thursday
    assert q.query_id == validate(_req(scenario="search", query="whole  milk"), 1000).query_id
    assert len(q.request_id) == 32
    assert validate(_req(), 1000).query_id == 0


def test_gateway_tensors_equal_the_trainers_for_the_same_rows() -> None:
    spec = FeatureSpec()
    table = random_impressions(40, seed=3)
    rows = table.to_pylist()
    for row in rows:
        request = pb.RankRequest(user_id=row["user_id"], scenario=row["scenario"], query=row["query"],
                                 query_id=row["query_id"], query_terms=row["query_terms"], candidates=[row["item_id"]],
                                 context=pb.Context(hour=row["hour"], weekday=row["weekday"]))
        if row["scenario"] == "rec":
            request.query, request.query_id = "", 0
            del request.query_terms[:]
        q = validate(request, 1000)
        user = {k: row[k] for k in ("user_segment", "user_level", "hist_item_id", "hist_cate2", "hist_brand",
                                    "hist_source", "hist_action")}
        items = [{k: row[k] for k in ("cate1", "cate2", "brand", "price_bucket")}]
        served = build_input_arrays(spec, candidate_columns(q, user, items), allow_missing=True)
        trained = build_input_arrays(spec, pa.Table.from_pylist([{**row, "position": 0}], schema=table.schema))
        for name in trained:
            np.testing.assert_array_equal(served[name], trained[name], err_msg=name)


def test_objectives() -> None:
    cfg = load_config(environ={}).gateway
    ctr, ctcvr = np.array([0.1, 0.5]), np.array([0.05, 0.01])
    assert objective_scores(cfg, ctr, ctcvr).tolist() == [0.05, 0.01]
    weighted = cfg.model_copy(update={"objective": "weighted", "ctr_weight": 1.0, "ctcvr_weight": 2.0})
    np.testing.assert_allclose(objective_scores(weighted, ctr, ctcvr), [0.2, 0.52])


class FakeFeatures:
    def __init__(self) -> None:
        self.item_calls: list[list[int]] = []

    def user(self, user_id):
        return {"user_segment": 1, "hist_item_id": [5, 6]}

    def items(self, item_ids):
        self.item_calls.append(list(item_ids))
        return {int(i): {"cate2": int(i) % 7, "popularity": float(i)} for i in item_ids}


def test_item_cache_fetches_misses_once_and_expires() -> None:
    source = FakeFeatures()
    cache = ItemCache(source, ttl_s=60)
    assert [r["cate2"] for r in cache.get([1, 2, 3])] == [1, 2, 3]
    cache.get([2, 3, 4])
    assert source.item_calls == [[1, 2, 3], [4]] and cache.hits == 2 and cache.misses == 4
    cache.invalidate([2])
    cache.get([2])
    assert source.item_calls[-1] == [2]
    expired = ItemCache(source, ttl_s=0)
    expired.get([9])
    expired.get([9])
    assert source.item_calls[-2:] == [[9], [9]]


class FakeRepo:
    def __init__(self, version):
        self.version = version

    def serving_version(self):
        return self.version

    def spec(self, version):
        return FeatureSpec()

    def signature(self):
        return {"inputs": [{"name": "scenario", "reshape": []}]}


class FakeScorer:
    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.seen = None

    async def score(self, arrays, reshape, model_name=None):
        if self.fail:
            raise self.fail
        self.seen = arrays
        n = len(arrays["scenario"])
        ctr = np.linspace(0.1, 0.9, n).astype(np.float32)[::-1].copy()
        ctr[0] = 0.01
        return Scores(ctr, ctr / 10, 4)


def _service(scorer, version=4):
    return RankingService(load_config(environ={}), FakeFeatures(), scorer, FakeRepo(version))


def test_rank_orders_by_objective_and_reports_version() -> None:
    scorer = FakeScorer()
    service = _service(scorer)
    ranked = asyncio.run(service.rank(validate(_req(candidates=[10, 20, 30, 40]), 1000)))
    assert ranked.version == "4" and not ranked.fallback_reason
    assert ranked.order.tolist() == [1, 2, 3, 0]  # candidate 0 was given the lowest score
    assert scorer.seen["item"].shape == (4, 5) and scorer.seen["hist_mask"][:, :2].sum() == 8


@pytest.mark.parametrize("scorer,version,reason", [
    (FakeScorer(fail=ConnectionError("down")), 4, "model server unavailable"),
    (FakeScorer(), None, "no model published"),
])
def test_fallback_ranks_by_popularity(scorer, version, reason) -> None:
    ranked = asyncio.run(_service(scorer, version).rank(validate(_req(candidates=[3, 9, 1]), 1000)))
    assert ranked.fallback_reason == reason and ranked.version == ""
    assert ranked.order.tolist() == [1, 0, 2]  # popularity = item id in the fake
