"""features.spec + features.tensors: the one feature module shared by trainer and gateway."""
import numpy as np
import pyarrow as pa
import pytest
import torch

from tests.unit.conftest_model import tiny_spec, tiny_table
from features.spec import INPUT_NAMES, FeatureSpec
from features.tensors import build_input_arrays, build_inputs, hash_ids, table_salt


def test_spec_json_round_trip_and_version_check():
    spec = tiny_spec()
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    bad = spec.to_json().replace('"version": 1', '"version": 99')
    with pytest.raises(ValueError, match="version"):
        FeatureSpec.from_json(bad)


def test_hash_is_deterministic_in_range_and_salted_per_table():
    spec = tiny_spec()
    ids = np.arange(-5, 5000, dtype=np.int64)
    a = hash_ids(ids, table_salt(spec, "item_id"), 1009)
    assert np.array_equal(a, hash_ids(ids, table_salt(spec, "item_id"), 1009))
    assert a.min() >= 1 and a.max() <= 1008
    b = hash_ids(ids, table_salt(spec, "brand"), 1009)
    assert (a != b).mean() > 0.9
    # spread: 5005 ids over 1008 buckets should use most buckets
    assert len(np.unique(a)) > 900


def test_build_inputs_shapes_dtypes_and_names():
    spec = tiny_spec(history_len=10, query_len=4)
    x = build_inputs(spec, tiny_table(50))
    assert tuple(x) == INPUT_NAMES
    assert x["scenario"].shape == (50,) and x["scenario"].dtype == torch.int64
    assert x["user"].shape == (50, 3) and x["item"].shape == (50, 5) and x["context"].shape == (50, 3)
    assert x["query"].shape == (50, 5)
    assert x["hist"].shape == (50, 10, 5) and x["hist"].dtype == torch.int64
    assert x["hist_mask"].shape == (50, 10) and x["hist_mask"].dtype == torch.float32


def test_history_is_truncated_newest_first_padded_and_masked():
    spec = tiny_spec(history_len=4)
    cols = {"scenario": ["rec", "search"], "user_id": [1, 2], "item_id": [3, 4],
            "hist_item_id": [[11, 12, 13, 14, 15, 16], [21]], "query_id": [0, 7], "query_terms": [[], [1, 2]]}
    x = build_input_arrays(spec, cols, allow_missing=True)
    salt = table_salt(spec, "item_id")
    assert np.array_equal(x["hist"][0, :, 0], hash_ids(np.array([11, 12, 13, 14]), salt, spec.buckets["item_id"]))
    assert x["hist"][1, 0, 0] == hash_ids(np.array([21]), salt, spec.buckets["item_id"])[0]
    assert np.array_equal(x["hist"][1, 1:, 0], [0, 0, 0])
    assert np.array_equal(x["hist_mask"], [[1, 1, 1, 1], [1, 0, 0, 0]])
    # item_id and hist_item_id share a table: same raw id -> same index
    y = build_input_arrays(spec, {"scenario": ["rec"], "item_id": [11], "hist_item_id": [[11]]}, allow_missing=True)
    assert y["item"][0, 0] == y["hist"][0, 0, 0] != 0
    # rec row: no query -> all zeros; search row: query id + 2 terms
    assert np.array_equal(x["query"][0], [0, 0, 0, 0, 0])
    assert (x["query"][1, :3] > 0).all() and (x["query"][1, 3:] == 0).all()


def test_missing_and_null_values_map_to_zero_and_missing_columns_raise_unless_allowed():
    spec = tiny_spec()
    table = pa.table({"scenario": ["search", "rec"], "user_id": pa.array([5, None], pa.int64())})
    with pytest.raises(KeyError, match="is missing"):
        build_inputs(spec, table)
    x = build_inputs(spec, table, allow_missing=True)
    assert x["user"][0, 0] > 0 and x["user"][1, 0] == 0
    assert (x["item"] == 0).all()
    # cate2 = 0 means unknown; hour = 0 is a real value
    y = build_inputs(spec, {"scenario": [0], "cate2": [0], "hour": [0]}, allow_missing=True)
    assert y["item"][0, 2] == 0 and y["context"][0, 0] > 0


def test_table_record_batch_and_python_lists_give_identical_tensors():
    spec = tiny_spec()
    table = tiny_table(20, seed=3)
    from_table = build_inputs(spec, table)
    from_batch = build_inputs(spec, table.to_batches()[0])
    from_lists = build_inputs(spec, {name: table.column(name).to_pylist() for name in spec.input_columns})
    for name in INPUT_NAMES:
        assert torch.equal(from_table[name], from_batch[name])
        assert torch.equal(from_table[name], from_lists[name])


def test_inputs_do_not_depend_on_labels():
    spec = tiny_spec()
    table = tiny_table(30, seed=4)
    flipped = table.set_column(table.schema.get_field_index("click"), "click",
                               pa.array(1 - table.column("click").to_numpy(), pa.int8()))
    a, b = build_inputs(spec, table), build_inputs(spec, flipped)
    assert all(torch.equal(a[k], b[k]) for k in INPUT_NAMES)
    assert "click" not in spec.input_columns


def test_unknown_scenario_is_rejected():
    with pytest.raises(ValueError, match="scenario"):
        build_inputs(tiny_spec(), {"scenario": ["video"]}, allow_missing=True)
