"""Feast definitions of the stack, declared in one place.

Entities, push sources (the stream jobs write here) and feature views. Each push
source has a Parquet batch source in the offline store directory (Feast requires
one even for online-only use), so the directory is the only parameter.

Views and who writes them
=========================

==================  ================  ===========================================================
view                entities          written by / content
==================  ================  ===========================================================
user_profile        user              catalog loader (``streams.catalog``): user_segment, user_level
item_catalog        item              catalog loader: cate1, cate2, brand, price_bucket
user_history        user              stream (stage 1): the last ``history_len`` clicks, newest first,
                                      as the impression table's ``hist_*`` lists (+ query, ts)
user_counters       user              stream (stage 1): impressions/clicks/orders per scenario and in
                                      total over the sliding windows of ``USER_WINDOWS``
item_stats          item              stream (stage 2): per-scenario counts and smoothed CTR / CVR
item_popularity     item              stream (stage 2): all-scenario smoothed CTR. The gateway's
                                      fallback ranking (Triton down) reads ``item_popularity:ctr``.
query_item_stats    query, item       stream (stage 2): search [impressions, clicks, orders] and
                                      smoothed CTR per query-item
stack_probe         probe             the stack's health check (never read by the model)
==================  ================  ===========================================================

The names of ``user_profile``, ``user_history`` and ``item_catalog`` features are the
impression table's column names (:data:`usr.data.tables.IMPRESSION_SCHEMA`), so the
gateway assembles the same row fields the trainer reads from the stream-built rows
(:data:`ROW_FEATURES`). The labelled rows and the online features are computed by the
same code (``streams.state``), which is what "one definition" means here; the catalog
views also have real batch sources (written by the loader), so point-in-time training
retrieval with ``get_historical_features`` works for them.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Int64, String

USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="a shopper")
ITEM = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="a product")
QUERY = Entity(name="query", join_keys=["query"], value_type=ValueType.STRING,
               description="a normalised search query (lower case, single spaces)")
PROBE = Entity(name="probe", join_keys=["probe_id"], value_type=ValueType.INT64,
               description="health-check entity of the stack (never read by the model)")

TTL = timedelta(days=30)

from features.layout import (COUNT_LAYOUT, HISTORY_FEATURES, POPULARITY_FEATURE, RATE_LAYOUT,  # noqa: F401
                             ROW_FEATURES, USER_WINDOWS, WINDOW_BUCKET_S)


def _push_source(name: str, offline_dir: Path) -> PushSource:
    batch = FileSource(
        name=f"{name}_batch",
        path=str(offline_dir / f"{name}.parquet"),
        timestamp_field="event_timestamp",
    )
    return PushSource(name=f"{name}_push", batch_source=batch)


def catalog_source_path(offline_dir: Path, name: str) -> Path:
    """Where the catalog loader writes the batch source of ``user_profile`` / ``item_catalog``."""
    return offline_dir / "catalog" / f"{name}.parquet"


def _catalog_source(name: str, offline_dir: Path) -> PushSource:
    batch = FileSource(name=f"{name}_batch", path=str(catalog_source_path(offline_dir, name)),
                       timestamp_field="event_timestamp")
    return PushSource(name=f"{name}_push", batch_source=batch)


def _view(name: str, entities: list[Entity], schema: list[Field], source: PushSource, doc: str) -> FeatureView:
    return FeatureView(name=name, entities=entities, ttl=TTL, schema=schema, source=source, online=True,
                       description=doc)


def build_definitions(offline_dir: Path) -> dict[str, object]:
    """All Feast objects by name, ready for ``FeatureStore.apply``."""
    probe_view = FeatureView(
        name="stack_probe",
        entities=[PROBE],
        ttl=TTL,
        schema=[Field(name="probe_value", dtype=Int64)],
        source=_push_source("stack_probe", offline_dir),
        online=True,
    )
    user_profile = _view("user_profile", [USER], [
        Field(name="user_segment", dtype=Int64), Field(name="user_level", dtype=Int64),
    ], _catalog_source("user_profile", offline_dir), "profile buckets from the user catalog (0 = unknown)")
    item_catalog = _view("item_catalog", [ITEM], [
        Field(name="cate1", dtype=Int64), Field(name="cate2", dtype=Int64),
        Field(name="brand", dtype=Int64), Field(name="price_bucket", dtype=Int64),
    ], _catalog_source("item_catalog", offline_dir), "item attributes from the item catalog (0 = unknown)")
    user_history = _view("user_history", [USER], [
        *(Field(name=n, dtype=Array(Int64)) for n in HISTORY_FEATURES),
        Field(name="hist_query", dtype=Array(String)),
        Field(name="hist_ts", dtype=Array(Int64)),
    ], _push_source("user_history", offline_dir),
        "last clicks of the user, newest first (action 2 = the click led to an order)")
    user_counters = _view("user_counters", [USER], [
        *(Field(name=f"counts_{w}", dtype=Array(Int64)) for w in USER_WINDOWS),
        Field(name="counts_as_of", dtype=Int64),
    ], _push_source("user_counters", offline_dir),
        f"counts ({', '.join(COUNT_LAYOUT)}) in the windows ending at the user's last event (counts_as_of, ms)")
    item_stats = _view("item_stats", [ITEM], [
        Field(name="counts", dtype=Array(Int64)), Field(name="rates", dtype=Array(Float32)),
    ], _push_source("item_stats", offline_dir),
        f"counts ({', '.join(COUNT_LAYOUT)}) and smoothed rates ({', '.join(RATE_LAYOUT)})")
    item_popularity = _view("item_popularity", [ITEM], [
        Field(name="ctr", dtype=Float32),
    ], _push_source("item_popularity", offline_dir),
        "all-scenario smoothed CTR: the gateway's fallback ranking score (counts are in item_stats)")
    query_item_stats = _view("query_item_stats", [QUERY, ITEM], [
        Field(name="counts", dtype=Array(Int64)), Field(name="ctr", dtype=Float32),
    ], _push_source("query_item_stats", offline_dir),
        "search [impressions, clicks, orders] and smoothed CTR per query-item")
    objects: dict[str, object] = {
        "user": USER,
        "item": ITEM,
        "query": QUERY,
        "probe": PROBE,
        "stack_probe": probe_view,
        "user_profile": user_profile,
        "item_catalog": item_catalog,
        "user_history": user_history,
        "user_counters": user_counters,
        "item_stats": item_stats,
        "item_popularity": item_popularity,
        "query_item_stats": query_item_stats,
        # the model's online inputs (the impression table's user/item/history columns)
        "ranking": FeatureService(name="ranking", features=[user_profile, user_history, item_catalog]),
        # the fallback ranking when the model server is down
        "ranking_fallback": FeatureService(name="ranking_fallback", features=[item_popularity]),
        # behaviour statistics for monitoring and future model inputs
        "behaviour_stats": FeatureService(name="behaviour_stats",
                                          features=[user_counters, item_stats, query_item_stats]),
    }
    return objects
