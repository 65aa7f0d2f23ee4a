"""The stream's states against the batch reference (streams.offline) on simulated logs:
any reading order, batching, duplicate, late event or crash leaves the same output."""
from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from streams import offline
from streams.catalog import load_source
from streams.state import StateConfig
from tests.unit.streams_harness import (MemoryRun, assert_same_features, assert_same_rows, close_log, messages_of,
                                        perturb, rows_of, simulate_small)

CFG = StateConfig(click_window_ms=600_000, order_window_ms=3_600_000, lateness_ms=120_000,
                  dedup_retention_ms=7_200_000, rows_bucket_ms=600_000)
PARTITIONS = 3


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    d = simulate_small(tmp_path_factory.mktemp("sim"))
    return d, load_source(d), pq.read_table(d / "events.parquet").to_pandas()


def _run(log: pd.DataFrame, catalog, seed: int, ck_dir=None, crash_every=None, max_batch=120) -> MemoryRun:
    msgs = messages_of(log, PARTITIONS)
    close_log(msgs)
    run = MemoryRun(CFG, catalog, PARTITIONS, ck_dir=ck_dir)
    run.run(msgs, seed=seed, max_batch=max_batch, crash_every=crash_every)
    return run


def _check(run: MemoryRun, ref: offline.OfflineResult) -> None:
    assert_same_rows(rows_of(run), ref.rows)
    assert_same_features(run.users, ref.users, "user")
    assert_same_features(run.items, {i: {k: v for k, v in f.items() if k in run.items.get(i, f)}
                                     for i, f in ref.items.items()}, "item")
    assert_same_features(run.query_items, ref.query_items, "query-item")


def test_any_interleaving_equals_the_batch_computation(sim) -> None:
    _, catalog, log = sim
    ref = offline.compute(log, catalog, CFG, PARTITIONS)
    assert ref.rows.num_rows == (log["event_type"] == "impression").sum() and ref.rows["click"].to_numpy().sum() > 0
    for seed in (1, 2):
        _check(_run(log, catalog, seed, max_batch=40 * seed), ref)


def test_faulty_log_with_crashes_equals_the_batch_computation(sim, tmp_path) -> None:
    _, catalog, log = sim
    bad = perturb(log, CFG, seed=1)
    ref = offline.compute(bad, catalog, CFG, PARTITIONS)
    # the reference itself: duplicates dropped, stale copies rejected, orphan orders rejected
    assert ref.rows.num_rows == (log["event_type"] == "impression").sum()
    assert set(ref.rejected["reason"]) == {"late", "order without a click"}
    run = _run(bad, catalog, seed=3, ck_dir=tmp_path, crash_every=4)
    _check(run, ref)
    dead = {(p, d.kind, d.field) for p, d in run.dead}
    assert {f for _, _, f in dead} == {"ts", "click"}
    late_ids = {d.payload for _, d in run.dead if d.field == "ts"}
    assert len(late_ids) == (ref.rejected["reason"] == "late").sum()
    assert sum(d.field == "click" for _, d in run.dead) >= (ref.rejected["reason"] != "late").sum()


def test_replaying_the_whole_log_twice_changes_nothing(sim) -> None:
    _, catalog, log = sim
    ref = offline.compute(log, catalog, CFG, PARTITIONS)
    run = _run(pd.concat([log, log], ignore_index=True), catalog, seed=4)
    _check(run, ref)
