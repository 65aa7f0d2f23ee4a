"""The catalog the stream enriches events with: item attributes, user profiles, and
the query dictionary (query text -> query id and term ids).

Files (``<run>/streams/catalog/``, written by :func:`install`, read by every worker):

================  ==========================================================
items.parquet     item_id, cate1, cate2, brand, price_bucket
users.parquet     user_id, user_segment, user_level
queries.parquet   query (normalised text), query_id, query_terms (list)
vocab.parquet     term, term_id (terms of queries not in the dictionary)
VERSION           content hash; workers reload when it changes
================  ==========================================================

:func:`install` also writes ``user_profile`` and ``item_catalog`` to the Feast online
store and their batch sources (for point-in-time retrieval). Unknown ids get 0 (the
"unknown" value of the impression table); a query outside the dictionary gets
:func:`stable_query_id` and the ids of its known terms.

    python -m streams.catalog SIM_DIR      # a simulator output directory
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from usr.config import Config

ITEM_COLUMNS = ("cate1", "cate2", "brand", "price_bucket")
USER_COLUMNS = ("user_segment", "user_level")


_NORMALISED: dict[str, str] = {}


def normalise_query(text: str) -> str:
    """Lower case, single spaces: the key of query features and query-item statistics."""
    hit = _NORMALISED.get(text)
    if hit is None:
        if len(_NORMALISED) > 200_000:
            _NORMALISED.clear()
        hit = _NORMALISED[text] = " ".join(text.lower().split())
    return hit


def stable_query_id(text: str) -> int:
    """A query id from the normalised text for queries outside the dictionary (> 0, < 2^62).

    The same function as ``gateway.validation.stable_query_id``, so a query unknown to
    both gets the same id in the training rows and at serving time.
    """
    digest = hashlib.blake2b(normalise_query(text).encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "little") % ((1 << 62) - 1)) + 1


def catalog_dir(config: Config) -> Path:
    return config.run.dir / "streams" / "catalog"


def _dense(ids: np.ndarray, values: np.ndarray, dtype: Any) -> np.ndarray:
    """An array indexed by id (0 where the id is not in ``ids``)."""
    size = int(ids.max()) + 1 if ids.size else 1
    out = np.zeros(size, dtype=dtype)
    out[ids] = values
    return out


@dataclass
class Catalog:
    """Lookups by id, all returning 0 for unknown ids."""

    items: dict[str, np.ndarray] = field(default_factory=dict)   # column -> array indexed by item id
    users: dict[str, np.ndarray] = field(default_factory=dict)   # column -> array indexed by user id
    queries: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    vocab: dict[str, int] = field(default_factory=dict)
    version: str = "empty"

    # ---- lookups --------------------------------------------------------------------
    def item_attrs(self, item_id: int) -> tuple[int, int, int, int]:
        """(cate1, cate2, brand, price_bucket) of one item."""
        it = self.items
        if not it or item_id >= it["cate1"].size:
            return (0, 0, 0, 0)
        return (int(it["cate1"][item_id]), int(it["cate2"][item_id]), int(it["brand"][item_id]),
                int(it["price_bucket"][item_id]))

    def user_attrs(self, user_id: int) -> tuple[int, int]:
        """(user_segment, user_level) of one user."""
        us = self.users
        if not us or user_id >= us["user_segment"].size:
            return (0, 0)
        return (int(us["user_segment"][user_id]), int(us["user_level"][user_id]))

    def item_column(self, column: str, item_ids: np.ndarray) -> np.ndarray:
        """One attribute for many items (vectorised)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        arr = self.items.get(column)
        if arr is None:
            return np.zeros(ids.size, dtype=np.int64)
        ok = (ids >= 0) & (ids < arr.size)
        return np.where(ok, arr[np.where(ok, ids, 0)], 0).astype(np.int64)

    def user_column(self, column: str, user_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(user_ids, dtype=np.int64)
        arr = self.users.get(column)
        if arr is None:
            return np.zeros(ids.size, dtype=np.int64)
        ok = (ids >= 0) & (ids < arr.size)
        return np.where(ok, arr[np.where(ok, ids, 0)], 0).astype(np.int64)

    def query_features(self, text: str) -> tuple[int, tuple[int, ...]]:
        """(query_id, query_terms) of a query text; (0, ()) for the empty query."""
        if not text:
            return 0, ()
        key = normalise_query(text)
        hit = self.queries.get(key)
        if hit is not None:
            return hit
        terms = tuple(self.vocab[w] for w in key.split() if w in self.vocab)
        return stable_query_id(key), terms

    # ---- tables -----------------------------------------------------------------------
    @classmethod
    def from_tables(cls, items: pa.Table | None, users: pa.Table | None = None,
                    queries: pa.Table | None = None, vocab: pa.Table | None = None) -> "Catalog":
        cat = cls()
        if items is not None and items.num_rows:
            ids = items.column("item_id").to_numpy().astype(np.int64)
            for c in ITEM_COLUMNS:
                vals = items.column(c).to_numpy(zero_copy_only=False) if c in items.column_names else np.zeros(ids.size)
                cat.items[c] = _dense(ids, np.nan_to_num(vals).astype(np.int64), np.int64)
        if users is not None and users.num_rows:
            ids = users.column("user_id").to_numpy().astype(np.int64)
            for c in USER_COLUMNS:
                vals = users.column(c).to_numpy(zero_copy_only=False) if c in users.column_names else np.zeros(ids.size)
                cat.users[c] = _dense(ids, np.nan_to_num(vals).astype(np.int64), np.int64)
        if queries is not None and queries.num_rows:
            for q, qid, terms in zip(queries.column("query").to_pylist(), queries.column("query_id").to_pylist(),
                                     queries.column("query_terms").to_pylist()):
                cat.queries[normalise_query(q)] = (int(qid), tuple(int(t) for t in terms or ()))
        if vocab is not None and vocab.num_rows:
            cat.vocab = dict(zip(vocab.column("term").to_pylist(), (int(v) for v in vocab.column("term_id").to_pylist())))
        return cat

    def tables(self) -> dict[str, pa.Table]:
        """The catalog as the four files of the catalog directory."""
        out: dict[str, pa.Table] = {}
        if self.items:
            ids = np.flatnonzero(np.any(np.stack([self.items[c] for c in ITEM_COLUMNS]) != 0, axis=0))
            out["items"] = pa.table({"item_id": pa.array(ids, pa.int64()),
                                     **{c: pa.array(self.items[c][ids], pa.int64()) for c in ITEM_COLUMNS}})
        if self.users:
            ids = np.flatnonzero(np.any(np.stack([self.users[c] for c in USER_COLUMNS]) != 0, axis=0))
            out["users"] = pa.table({"user_id": pa.array(ids, pa.int64()),
                                     **{c: pa.array(self.users[c][ids], pa.int64()) for c in USER_COLUMNS}})
        keys = sorted(self.queries)
        out["queries"] = pa.table({
            "query": pa.array(keys, pa.string()),
            "query_id": pa.array([self.queries[k][0] for k in keys], pa.int64()),
            "query_terms": pa.array([list(self.queries[k][1]) for k in keys], pa.list_(pa.int64())),
        })
        terms = sorted(self.vocab)
        out["vocab"] = pa.table({"term": pa.array(terms, pa.string()),
                                 "term_id": pa.array([self.vocab[t] for t in terms], pa.int64())})
        return out


# ---------------------------------------------------------------- sources

def sim_query_dictionary(sim_dir: str | Path) -> tuple[dict[str, tuple[int, tuple[int, ...]]], dict[str, int]]:
    """Every query the simulator can issue, with its query id and term ids, and the term
    vocabulary. Rebuilt from ``sim_config.json`` (the world is deterministic in its seed)."""
    from usr.data.sim.names import MODIFIERS
    from usr.data.sim.run import load_config_from_dir
    from usr.data.sim.world import build_world

    cat = build_world(load_config_from_dir(sim_dir)).catalog
    queries: dict[str, tuple[int, tuple[int, ...]]] = {}
    for c2 in range(1, cat.n_cate2 + 1):
        brands = [0] + [int(b) for b in np.flatnonzero(cat.cate2_brand_ok[c2]) if b > 0]
        for b in brands:
            for m in range(len(MODIFIERS)):
                text = cat.query_text(c2, b, m)
                qid = int(cat.query_id(np.array([c2]), np.array([b]), np.array([m]))[0])
                queries.setdefault(normalise_query(text), (qid, tuple(cat.vocab.terms(text))))
    return queries, dict(cat.vocab.term_id)


def load_source(source: str | Path) -> Catalog:
    """A catalog from a simulator directory (items/users parquet + its query dictionary)
    or from a directory holding items.parquet [users.parquet queries.parquet vocab.parquet]."""
    src = Path(source)
    items_file = src / "items.parquet"
    if not items_file.is_file():
        raise FileNotFoundError(f"no items.parquet in {src}")
    items = pq.read_table(items_file)
    users = pq.read_table(src / "users.parquet") if (src / "users.parquet").is_file() else None
    queries = pq.read_table(src / "queries.parquet") if (src / "queries.parquet").is_file() else None
    vocab = pq.read_table(src / "vocab.parquet") if (src / "vocab.parquet").is_file() else None
    cat = Catalog.from_tables(items, users, queries, vocab)
    if queries is None and (src / "sim_config.json").is_file():
        cat.queries, cat.vocab = sim_query_dictionary(src)
    return cat


def _version(tables: dict[str, pa.Table]) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        h.update(name.encode())
        for batch in tables[name].to_batches():
            for col in batch.columns:
                for buf in col.buffers():
                    if buf is not None:
                        h.update(memoryview(buf))
    return h.hexdigest()[:16]


def write_catalog_dir(cat: Catalog, out_dir: Path) -> str:
    """Write the catalog files (atomically, VERSION last); returns the version."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = cat.tables()
    for name, table in tables.items():
        tmp = out_dir / f".{name}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(out_dir / f"{name}.parquet")
    version = _version(tables)
    tmp = out_dir / ".VERSION.tmp"
    tmp.write_text(version)
    tmp.replace(out_dir / "VERSION")
    return version


def read_version(config: Config) -> str | None:
    try:
        return (catalog_dir(config) / "VERSION").read_text().strip()
    except OSError:
        return None


def load_installed(config: Config) -> Catalog:
    """The catalog installed under the run directory (empty if none)."""
    d = catalog_dir(config)
    version = read_version(config)
    if version is None:
        return Catalog()

    def opt(name: str) -> pa.Table | None:
        p = d / f"{name}.parquet"
        return pq.read_table(p) if p.is_file() else None

    cat = Catalog.from_tables(opt("items"), opt("users"), opt("queries"), opt("vocab"))
    cat.version = version
    return cat


def write_online(config: Config, cat: Catalog, store: Any = None) -> dict[str, int]:
    """Write user_profile and item_catalog to the online store and their batch sources."""
    import pandas as pd

    from features.definitions import catalog_source_path
    from features.store import apply_definitions, offline_dir

    store = store or apply_definitions(config)
    tables = cat.tables()
    now = pd.Timestamp.now(tz="UTC")
    written: dict[str, int] = {}
    for view, name in (("item_catalog", "items"), ("user_profile", "users")):
        table = tables.get(name)
        if table is None or table.num_rows == 0:
            continue
        frame = table.to_pandas()
        frame["event_timestamp"] = now
        path = catalog_source_path(offline_dir(config), view)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        for start in range(0, len(frame), 50_000):
            store.write_to_online_store(view, frame.iloc[start:start + 50_000])
        written[view] = len(frame)
    return written


def install(config: Config, source: str | Path, online: bool = True) -> dict[str, Any]:
    """Install a catalog for the stream workers (and, with ``online``, the online store)."""
    cat = load_source(source)
    version = write_catalog_dir(cat, catalog_dir(config))
    out: dict[str, Any] = {"version": version, "items": int(np.count_nonzero(cat.items.get("cate2", np.zeros(1)))),
                           "users": int(np.count_nonzero(cat.users.get("user_segment", np.zeros(1)))),
                           "queries": len(cat.queries), "terms": len(cat.vocab)}
    if online:
        out["online"] = write_online(config, cat)
    return out


def main(argv: list[str] | None = None) -> int:
    from usr.config import load_config

    parser = argparse.ArgumentParser(prog="python -m streams.catalog", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="simulator output directory, or a directory with items.parquet ...")
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument("--no-online", action="store_true", help="only install the files for the workers")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        out = install(config, args.source, online=not args.no_online)
    except FileNotFoundError as exc:
        print(f"streams.catalog: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
