"""Incremental retraining against the real local Triton: promotion, rejection,
rollback, and a version switch under continuous ranking traffic."""
from __future__ import annotations

import threading
import time

import grpc
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gateway.client import RankingClient
from gateway.server import build_service
from model.registry import Registry
from model.retrain import registry_dir, retrain_once, rollback
from model.repository import serving_version
from tests.integration.gateway_fixtures import gateway_config, running_gateway, wait_model_version
from tests.integration.test_gateway import CatalogFeatures
from usr.config import Config
from usr.data.sim.config import SimConfig
from usr.data.sim.run import simulate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shop_log(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop")
    simulate(SimConfig(days=6, n_users=400, n_items=800, seed=1), out, progress=False)
    return pq.read_table(out / "impressions.parquet")


@pytest.fixture(scope="module")
def retrain_config(stack: Config, tmp_path_factory) -> Config:
    """The session stack's Triton, a model name of our own, labelled rows that arrive in parts."""
    root = tmp_path_factory.mktemp("retrain")
    (root / "labels" / "impressions").mkdir(parents=True)
    retrain = stack.retrain.model_copy(update={"data_dir": root / "labels", "registry_dir": root / "registry",
                                               "min_new_rows": 500})
    triton = stack.triton.model_copy(update={"model_name": "usr_retrain"})
    return stack.model_copy(update={"retrain": retrain, "triton": triton})


def arrive(config: Config, table, name: str, lo: int, hi: int) -> None:
    part = table.filter(pc.and_(pc.greater_equal(table["day"], lo), pc.less(table["day"], hi)))
    pq.write_table(part, config.retrain.data_dir / "impressions" / f"{name}.parquet")


def test_retrains_promote_reject_and_roll_back(retrain_config: Config, shop_log) -> None:
    config = retrain_config
    arrive(config, shop_log, "a", 0, 3)
    first = retrain_once(config, progress=False)
    assert first.decision == "promoted" and first.parent is None
    wait_model_version(config, first.version)

    arrive(config, shop_log, "b", 3, 5)
    better = retrain_once(config, progress=False)
    cand, serv = better.metrics["candidate"]["mean_auc"], better.metrics["serving"]["mean_auc"]
    assert better.decision == "promoted", better.reason
    assert better.parent == first.version and cand >= serv - config.retrain.tolerance
    assert better.data_window["watermark_ts"] > first.data_window["watermark_ts"]
    wait_model_version(config, better.version)  # Triton serves the new version

    # nothing new: the run is skipped and nothing changes
    assert retrain_once(config, progress=False) is None

    arrive(config, shop_log, "c", 5, 6)
    broken = config.model_copy(update={"retrain": config.retrain.model_copy(update={"lr": 25.0})})
    worse = retrain_once(broken, progress=False)
    assert worse.decision == "rejected", worse.reason
    assert worse.metrics["candidate"]["mean_auc"] < worse.metrics["serving"]["mean_auc"] - config.retrain.tolerance
    assert serving_version(config.triton.model_repository, config.triton.model_name) == better.version
    wait_model_version(config, better.version, timeout_s=5)  # still the old version
    records = {r.version: r.decision for r in Registry(registry_dir(config)).records()}
    assert records == {first.version: "promoted", better.version: "promoted", worse.version: "rejected"}
    assert (registry_dir(config) / "events.jsonl").exists()

    frm, to = rollback(config)
    assert (frm, to) == (better.version, first.version)
    wait_model_version(config, first.version)


def test_model_switch_under_traffic_has_zero_failed_calls(retrain_config: Config, shop_log) -> None:
    from tests.integration.gateway_fixtures import publish_model

    config = gateway_config(retrain_config.model_copy(
        update={"triton": retrain_config.triton.model_copy(update={"model_name": "usr_switch"})}))
    v1 = publish_model(config.triton.model_repository, name="usr_switch", seed=3)
    wait_model_version(config, v1)
    service = build_service(config, features=CatalogFeatures())
    replies, failures = [], []
    stop = threading.Event()

    def traffic(address: str) -> None:
        with RankingClient(address, timeout_s=5) as client:
            while not stop.is_set():
                try:
                    replies.append(client.rank(42, "rec", list(range(1, 101))))
                except grpc.RpcError as exc:
                    failures.append(exc)

    with running_gateway(config, service, log_impressions=False) as address:
        threads = [threading.Thread(target=traffic, args=(address,)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        v2 = publish_model(config.triton.model_repository, name="usr_switch", seed=4)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (replies and replies[-1].model_version == str(v2)):
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
    versions_seen = [r.model_version for r in replies]
    assert not failures, failures[:1]
    assert not any(r.fallback for r in replies)
    assert versions_seen[0] == str(v1) and versions_seen[-1] == str(v2)
    switch = versions_seen.index(str(v2))
    assert set(versions_seen[switch:]) == {str(v2)}, "the switch is one-way"
    assert len(replies) > 20
