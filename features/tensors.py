"""Impression rows -> the model's named, batch-first input tensors.

The one function both the trainer and the gateway call (so training and serving cannot
drift): :func:`build_inputs`. It accepts a ``pyarrow.Table``, a ``pyarrow.RecordBatch`` or a
mapping ``column -> values`` where values are plain Python lists, numpy arrays or pyarrow
arrays. Labels are never read. The tensor layout is documented in :mod:`features.spec`.

Ids are hashed with a vectorised splitmix64 finaliser salted per table (stable across
processes and machines: the salt comes from blake2b, not from Python's ``hash``).
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.spec import FeatureSpec

SCENARIO_CODES = {"search": 0, "rec": 1}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def table_salt(spec: FeatureSpec, table: str) -> np.uint64:
    digest = hashlib.blake2b(f"{spec.hash_seed}:{table}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def hash_ids(raw: np.ndarray, salt: np.uint64, buckets: int) -> np.ndarray:
    """Deterministic hash of int64 ids into ``1 .. buckets-1`` (0 stays free for padding)."""
    x = np.asarray(raw, dtype=np.int64).astype(np.uint64) ^ salt
    x = x + _GOLDEN
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return (x % np.uint64(buckets - 1)).astype(np.int64) + 1


# ---- column access -------------------------------------------------------------------
def _as_columns(data: Any) -> Mapping[str, Any]:
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return {name: data.column(name) for name in data.schema.names}
    if isinstance(data, Mapping):
        return data
    raise TypeError(f"build_inputs: expected a pyarrow Table/RecordBatch or a mapping of columns, got {type(data)!r}")


def _to_arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ndarray) and values.dtype == object:
        return pa.array(list(values))
    return pa.array(values)


def _num_rows(columns: Mapping[str, Any]) -> int:
    for values in columns.values():
        return len(values)
    return 0


def _scalar_ids(spec: FeatureSpec, columns: Mapping[str, Any], name: str, n: int, allow_missing: bool) -> np.ndarray:
    if name not in columns:
        if not allow_missing:
            raise KeyError(f"build_inputs: column '{name}' is missing")
        return np.zeros(n, dtype=np.int64)
    arr = _to_arrow(columns[name])
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    raw = np.asarray(pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    table = spec.table_of(name)
    out = hash_ids(raw, table_salt(spec, table), spec.buckets[table])
    if name in spec.zero_is_missing:
        valid &= raw != 0
    out[~valid] = 0
    return out


def _list_ids(spec: FeatureSpec, columns: Mapping[str, Any], name: str, n: int, width: int,
              allow_missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hashed ids of a list column padded/truncated to ``width`` (keeps the first entries),
    and the per-row list lengths (before truncation)."""
    out = np.zeros((n, width), dtype=np.int64)
    if name not in columns:
        if not allow_missing:
            raise KeyError(f"build_inputs: column '{name}' is missing")
        return out, np.zeros(n, dtype=np.int64)
    arr = _to_arrow(columns[name])
    lengths = np.asarray(pc.fill_null(arr.value_lengths(), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    flat = arr.flatten()
    valid = ~np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    raw = np.asarray(pc.fill_null(flat.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    table = spec.table_of(name)
    hashed = hash_ids(raw, table_salt(spec, table), spec.buckets[table])
    if name in spec.zero_is_missing:
        valid &= raw != 0
    hashed[~valid] = 0
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(raw), dtype=np.int64) - np.repeat(starts, lengths)
    keep = pos < width
    out[rows[keep], pos[keep]] = hashed[keep]
    return out, lengths


def _scenario_codes(columns: Mapping[str, Any], n: int) -> np.ndarray:
    if "scenario" not in columns:
        raise KeyError("build_inputs: column 'scenario' is missing")
    arr = _to_arrow(columns["scenario"])
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        names = arr.to_pylist()
        try:
            return np.array([SCENARIO_CODES[s] for s in names], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"build_inputs: unknown scenario {exc.args[0]!r} (expected 'search' or 'rec')") from None
    codes = np.array(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    if ((codes < 0) | (codes > 1)).any():
        raise ValueError("build_inputs: scenario codes must be 0 (search) or 1 (rec)")
    return codes


# ---- public API ------------------------------------------------------------------------
def build_input_arrays(spec: FeatureSpec, data: Any, *, allow_missing: bool = False) -> dict[str, np.ndarray]:
    """Like :func:`build_inputs` but returns numpy arrays (for clients that do not use torch)."""
    columns = _as_columns(data)
    n = _num_rows(columns)
    scenario = _scenario_codes(columns, n)

    def group(fields: tuple[str, ...]) -> np.ndarray:
        if not fields:
            return np.zeros((n, 0), dtype=np.int64)
        return np.stack([_scalar_ids(spec, columns, f, n, allow_missing) for f in fields], axis=1)

    query_id = _scalar_ids(spec, columns, spec.query_id_field, n, allow_missing)
    terms, _ = _list_ids(spec, columns, spec.query_terms_field, n, spec.query_len, allow_missing)
    hist_parts = []
    hist_len = np.zeros(n, dtype=np.int64)
    for f in spec.hist_fields:
        ids, lengths = _list_ids(spec, columns, f, n, spec.history_len, allow_missing)
        hist_parts.append(ids)
        hist_len = np.maximum(hist_len, lengths)
    hist = np.stack(hist_parts, axis=2)
    hist_mask = (np.arange(spec.history_len)[None, :] < np.minimum(hist_len, spec.history_len)[:, None]).astype(np.float32)
    return {
        "scenario": scenario,
        "user": group(spec.user_fields),
        "item": group(spec.item_fields),
        "context": group(spec.context_fields),
        "query": np.concatenate([query_id[:, None], terms], axis=1),
        "hist": hist,
        "hist_mask": hist_mask,
    }


def build_inputs(spec: FeatureSpec, data: Any, *, allow_missing: bool = False) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """Impression rows -> ``{scenario, user, item, context, query, hist, hist_mask}`` tensors.

    ``allow_missing=True`` (the gateway's setting) treats absent columns as missing values
    (index 0) instead of raising ``KeyError``; ``scenario`` is always required.
    """
    import torch

    return {k: torch.from_numpy(v) for k, v in build_input_arrays(spec, data, allow_missing=allow_missing).items()}
