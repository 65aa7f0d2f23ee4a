"""Stage 2 (item statistics) and the checkpoints."""
from __future__ import annotations

import pytest

from streams.catalog import Catalog
from streams.checkpoint import Checkpoint, LostOwnership, checkpoint_path
from streams.item_state import ItemStatsState, Smoothing, encode_records
from streams.state import KIND_CLICK, KIND_IMPRESSION, KIND_ORDER, PartitionState, StateConfig
from tests.unit.test_streams_state import NOW, T0, ev

SM = Smoothing(ctr_prior=0.05, cvr_prior=0.2, weight=20.0)


def test_item_stats_count_per_scenario_and_skip_replayed_records() -> None:
    st = ItemStatsState(0, SM)
    first = encode_records(1, [[KIND_IMPRESSION, 0, 7, 0, "milk", T0], [KIND_IMPRESSION, 1, 7, 1, "", T0 + 1],
                               [KIND_CLICK, 0, 7, 0, "milk", T0 + 2]])
    st.apply(0, first)
    # stage 1 restarted from an older checkpoint and re-emitted, plus one new record
    again = encode_records(1, [[KIND_IMPRESSION, 1, 7, 1, "", T0 + 1], [KIND_CLICK, 0, 7, 0, "milk", T0 + 2],
                               [KIND_ORDER, 0, 7, 0, "milk", T0 + 9]])
    st.apply(1, again)
    st.apply(1, again)          # the same internal message again: below the applied offset
    f = st.item_features([7])
    assert f["counts"] == [[1, 1, 1, 1, 0, 0, 2, 1, 1]]
    assert f["ctr"][0] == pytest.approx((1 + 20 * 0.05) / (2 + 20))
    assert f["rates"][0][1] == pytest.approx((1 + 20 * 0.2) / (1 + 20))
    assert f["last_ts"] == [T0 + 9]
    assert st.query_item_features([("milk", 7)])["counts"] == [[1, 1, 1]]
    assert st.counts["duplicate_records"] == 2 and st.counts["replayed"] == 1


def test_records_from_different_source_partitions_are_separate_channels() -> None:
    st = ItemStatsState(0, SM)
    st.apply(0, encode_records(0, [[KIND_IMPRESSION, 5, 3, 1, "", T0]]))
    st.apply(1, encode_records(1, [[KIND_IMPRESSION, 5, 3, 1, "", T0]]))   # same offset, other partition
    assert st.item_features([3])["counts"][0][3] == 2


def test_checkpoint_roundtrip_and_ownership(tmp_path) -> None:
    cfg = StateConfig(click_window_ms=60_000, order_window_ms=600_000, lateness_ms=30_000)
    a = PartitionState(2, cfg, Catalog())
    ck_a = Checkpoint(checkpoint_path(tmp_path, 1, 2), "worker-a")
    assert not ck_a.load_stage1(a)
    for off, (t, eid) in enumerate([("impression", "i1"), ("impression", "i2")]):
        a.apply(KIND_IMPRESSION, off, ev(t, eid, T0 + off), NOW)
    a.apply(KIND_CLICK, 0, ev("click", "c1", T0 + 5), NOW)
    a.advance()
    ck_a.commit_stage1(a)
    a.reset_outputs()
    # another worker takes the partition over: it sees exactly the committed state
    b = PartitionState(2, cfg, Catalog())
    ck_b = Checkpoint(checkpoint_path(tmp_path, 1, 2), "worker-b")
    assert ck_b.load_stage1(b)
    assert b.next_offset == [2, 1, 0] and b.history_features([1]) == a.history_features([1])
    assert sum(len(v) for v in b.pending.values()) == 2 and set(b.seen) == set(a.seen)
    # ... and the old owner can no longer overwrite it
    a.apply(KIND_IMPRESSION, 2, ev("impression", "i3", T0 + 9), NOW)
    with pytest.raises(LostOwnership):
        ck_a.commit_stage1(a)
    stage2 = ItemStatsState(0, SM)
    ck2 = Checkpoint(checkpoint_path(tmp_path, 2, 0), "worker-b")
    ck2.load_stage2(stage2)
    stage2.apply(0, encode_records(2, [[KIND_IMPRESSION, 0, 3, 1, "", T0]]))
    ck2.commit_stage2(stage2)
    again = ItemStatsState(0, SM)
    Checkpoint(checkpoint_path(tmp_path, 2, 0), "worker-c").load_stage2(again)
    assert again.items == stage2.items and again.channels == {"0:2": 0} and again.next_offset == 1
