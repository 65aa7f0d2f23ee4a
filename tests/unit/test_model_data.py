"""Streamed Parquet batches, time split, DDP sharding, labels."""
import numpy as np
import pyarrow as pa
import pytest
import torch

from tests.unit.conftest_model import tiny_spec, write_dataset
from model.data import BatchStream, available_days, build_labels, open_dataset, time_split


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), n=1500, days=4)


def test_time_split_trains_on_earlier_days_and_tests_on_the_last():
    assert time_split([0, 1, 2, 3]).to_dict() == {"train": [0, 1], "valid": [2], "test": [3]}
    assert time_split([5, 3, 4]).to_dict() == {"train": [3], "valid": [4], "test": [5]}
    assert time_split([0, 1]).to_dict() == {"train": [0], "valid": [0], "test": [1]}
    with pytest.raises(ValueError):
        time_split([0])


def test_stream_reads_only_its_days_in_bounded_batches(data_dir):
    spec = tiny_spec()
    assert available_days(open_dataset(data_dir)) == [0, 1, 2, 3]
    stream = BatchStream(data_dir, spec, [3], 128, read_batch_rows=100)
    sizes = [x["scenario"].shape[0] for x, _ in stream]
    assert sum(sizes) == stream.count_rows() > 0
    assert max(sizes) == 128 and all(s == 128 for s in sizes[:-1])


def test_shuffle_is_deterministic_by_seed_and_epoch(data_dir):
    spec = tiny_spec()

    def users(seed, epoch):
        s = BatchStream(data_dir, spec, [0, 1], 100, shuffle=True, seed=seed, shuffle_buffer=300, read_batch_rows=128)
        return torch.cat([lab["user_id"] for _, lab in s.epoch(epoch)])

    a = users(0, 0)
    assert torch.equal(a, users(0, 0))
    assert not torch.equal(a, users(1, 0)) and not torch.equal(a, users(0, 1))
    plain = torch.cat([lab["user_id"] for _, lab in BatchStream(data_dir, spec, [0, 1], 100)])
    assert torch.equal(torch.sort(a).values, torch.sort(plain).values)   # a permutation of the same rows


def test_ddp_shards_are_disjoint_and_together_equal_one_process_with_double_batch(data_dir):
    spec = tiny_spec()
    kw = dict(shuffle=True, seed=3, shuffle_buffer=250, read_batch_rows=128)
    single = [lab["user_id"] for _, lab in BatchStream(data_dir, spec, [0, 1], 64, drop_last=True, **kw).epoch(0)]
    ranks = [[lab["user_id"] for _, lab in BatchStream(data_dir, spec, [0, 1], 32, rank=r, world=2, **kw).epoch(0)]
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for step, batch in enumerate(single):
        assert torch.equal(batch, torch.cat([ranks[0][step], ranks[1][step]]))


def test_sample_fraction_keeps_the_same_rows_every_epoch(data_dir):
    spec = tiny_spec()
    s = BatchStream(data_dir, spec, [0, 1, 2], 10_000, sample_fraction=0.3, seed=1)
    n_all = s.count_rows()
    first = next(iter(s.epoch(0)))[1]["user_id"]
    second = next(iter(s.epoch(1)))[1]["user_id"]
    assert torch.equal(first, second)
    assert 0.2 * n_all < len(first) < 0.4 * n_all


def test_labels_ctcvr_and_global_consistency():
    table = pa.table({"click": pa.array([1, 0, 1, 0], pa.int8()), "order": pa.array([1, 0, 0, 0], pa.int8()),
                      "global_click": pa.array([0, 1, 1, 0], pa.int8()), "global_order": pa.array([0, 1, 0, 0], pa.int8()),
                      "user_id": pa.array([1, 2, 3, 4], pa.int64())})
    lab = build_labels(table)
    assert lab["ctcvr"].tolist() == [1, 0, 0, 0]
    assert lab["global_click"].tolist() == [1, 1, 1, 0]        # scenario click implies global click
    assert lab["global_ctcvr"].tolist() == [1, 1, 0, 0]
    assert torch.isnan(lab["p_click"]).all()                  # no truth columns -> NaN
    same = build_labels(table, global_labels="scenario")
    assert torch.equal(same["global_click"], same["click"]) and torch.equal(same["global_ctcvr"], same["ctcvr"])
