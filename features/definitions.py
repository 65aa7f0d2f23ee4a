"""Feast definitions of the stack, declared in one place.

Entities, push sources (the stream jobs push here) and feature views. Each push
source has a Parquet batch source in the offline store directory (Feast requires
one even for online-only use), so the directory is the only parameter.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float32, Int64

USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="a shopper")
ITEM = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="a product")
PROBE = Entity(name="probe", join_keys=["probe_id"], value_type=ValueType.INT64,
               description="health-check entity of the stack (never read by the model)")

TTL = timedelta(days=30)


def _push_source(name: str, offline_dir: Path) -> PushSource:
    batch = FileSource(
        name=f"{name}_batch",
        path=str(offline_dir / f"{name}.parquet"),
        timestamp_field="event_timestamp",
    )
    return PushSource(name=f"{name}_push", batch_source=batch)


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
    item_popularity = FeatureView(
        name="item_popularity",
        entities=[ITEM],
        ttl=TTL,
        schema=[
            Field(name="impressions", dtype=Int64),
            Field(name="clicks", dtype=Int64),
            Field(name="orders", dtype=Int64),
            Field(name="ctr", dtype=Float32),
        ],
        source=_push_source("item_popularity", offline_dir),
        online=True,
    )
    objects: dict[str, object] = {
        "user": USER,
        "item": ITEM,
        "probe": PROBE,
        "stack_probe": probe_view,
        "item_popularity": item_popularity,
        "ranking": FeatureService(name="ranking", features=[item_popularity]),
    }
    return objects
