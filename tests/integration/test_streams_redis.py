"""The stream workers with the production online store (Redis)."""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.publish import publish_log
from tests.integration.streams_fixtures import (assert_online_equals, assert_rows_equal, prepare, reference,
                                                streams_config, wait_done, workers)
from tests.unit.streams_harness import simulate_small
from usr.config import Config
from usr.stack import manager

pytestmark = pytest.mark.integration


def test_features_in_redis_equal_the_batch_reference(stack: Config, tmp_path_factory: pytest.TempPathFactory) -> None:
    sim_dir: Path = simulate_small(tmp_path_factory.mktemp("sim"), users=300, items=500, days=2, seed=23)
    config = streams_config(stack, tmp_path_factory.mktemp("redis-run"), USR__FEAST__ONLINE_STORE="redis")
    try:
        statuses = manager.up(config)          # starts Redis only: Kafka and Triton are the session's
        assert {s.name: s.healthy for s in statuses}.get("redis")
        prepare(config, sim_dir)
        publish_log(config, sim_dir)
        with workers(config, 1) as ws:
            ws[0].wait_ready()
            wait_done(config, ws)
        ref = reference(config, sim_dir)
        assert_online_equals(config, ref)
        assert_rows_equal(config, ref)
    finally:
        manager.down(config)
