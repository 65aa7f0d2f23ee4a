"""The feature spec: which impression columns become which model inputs, and how.

One versioned description shared by the trainer and the gateway (it is saved as JSON
beside every exported model), so that both build identical input tensors with
:func:`features.tensors.build_inputs`.

Input tensors (names fixed, batch first; see ``INPUT_NAMES``):

==========  =============  ===========================================================
name        shape / dtype  content
==========  =============  ===========================================================
scenario    [B] int64      0 = search, 1 = rec (``usr.data.tables.SCENARIO_ID``)
user        [B, Fu] int64  hashed ``user_fields``
item        [B, Fi] int64  hashed ``item_fields``
context     [B, Fc] int64  hashed ``context_fields``
query       [B, 1+Q] int64 column 0: hashed query id, columns 1..Q: hashed query terms
hist        [B, L, Fh]     hashed ``hist_fields`` of the last L behaviours, newest first
hist_mask   [B, L] float32 1.0 where a behaviour exists, 0.0 for padding
==========  =============  ===========================================================

Every id is hashed into ``1 .. buckets-1`` of its table; index 0 is reserved for
padding and missing values (and, for fields listed in ``zero_is_missing``, for a raw 0).
Fields that share a table (``item_id`` and ``hist_item_id``) share the salt, so the same
raw id lands in the same row.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPEC_VERSION = 1
INPUT_NAMES: tuple[str, ...] = ("scenario", "user", "item", "context", "query", "hist", "hist_mask")


def _default_buckets() -> dict[str, int]:
    # table name -> rows (row 0 = padding / missing)
    return {
        "user_id": 200_003,
        "user_segment": 64,
        "user_level": 16,
        "item_id": 200_003,
        "cate1": 512,
        "cate2": 4_096,
        "brand": 16_384,
        "price_bucket": 64,
        "hour": 32,
        "weekday": 8,
        "position": 128,
        "query_id": 65_536,
        "query_terms": 16_384,
        "hist_source": 4,
        "hist_action": 4,
    }


def _default_tables() -> dict[str, str]:
    # field (column) -> table it is looked up in; fields not listed use their own name
    return {"hist_item_id": "item_id", "hist_cate2": "cate2", "hist_brand": "brand"}


@dataclass(frozen=True)
class FeatureSpec:
    """Field lists, hash bucket counts, history and query lengths. Immutable and JSON-able."""

    version: int = SPEC_VERSION
    user_fields: tuple[str, ...] = ("user_id", "user_segment", "user_level")
    item_fields: tuple[str, ...] = ("item_id", "cate1", "cate2", "brand", "price_bucket")
    context_fields: tuple[str, ...] = ("hour", "weekday", "position")
    query_id_field: str = "query_id"
    query_terms_field: str = "query_terms"
    hist_fields: tuple[str, ...] = ("hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action")
    history_len: int = 50
    query_len: int = 8  # term slots (the query tensor has 1 + query_len columns)
    buckets: dict[str, int] = field(default_factory=_default_buckets)
    tables: dict[str, str] = field(default_factory=_default_tables)
    # raw value 0 means "unknown" for these fields -> index 0 (the padding row)
    zero_is_missing: tuple[str, ...] = (
        "user_segment", "user_level", "cate1", "cate2", "brand", "price_bucket", "query_id",
        "query_terms", "hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action",
    )
    hash_seed: int = 20240517

    def __post_init__(self) -> None:
        for name in self.all_fields:
            table = self.table_of(name)
            if table not in self.buckets:
                raise ValueError(f"feature spec: no bucket count for table '{table}' (field '{name}')")
            if self.buckets[table] < 2:
                raise ValueError(f"feature spec: table '{table}' needs at least 2 buckets")
        if self.history_len < 1 or self.query_len < 1:
            raise ValueError("feature spec: history_len and query_len must be >= 1")

    # ---- derived views -------------------------------------------------------------
    @property
    def all_fields(self) -> tuple[str, ...]:
        return (
            self.user_fields + self.item_fields + self.context_fields
            + (self.query_id_field, self.query_terms_field) + self.hist_fields
        )

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Impression columns that feed the model (no labels, by construction)."""
        return ("scenario",) + self.all_fields

    def table_of(self, field_name: str) -> str:
        return self.tables.get(field_name, field_name)

    def table_names(self) -> list[str]:
        """Distinct tables in a fixed order (the layout of the model's embedding)."""
        seen: list[str] = []
        for name in self.all_fields:
            t = self.table_of(name)
            if t not in seen:
                seen.append(t)
        return seen

    def table_offsets(self) -> dict[str, int]:
        """Row offset of every table inside one concatenated embedding matrix."""
        offsets: dict[str, int] = {}
        total = 0
        for t in self.table_names():
            offsets[t] = total
            total += self.buckets[t]
        return offsets

    def total_rows(self) -> int:
        return sum(self.buckets[t] for t in self.table_names())

    def group_offsets(self, group: str) -> list[int]:
        """Offsets for the columns of one input tensor (user, item, context, query, hist)."""
        offs = self.table_offsets()
        if group == "query":
            return [offs[self.table_of(self.query_id_field)]] + [offs[self.table_of(self.query_terms_field)]] * self.query_len
        return [offs[self.table_of(f)] for f in self.group_fields(group)]

    def group_fields(self, group: str) -> tuple[str, ...]:
        return {
            "user": self.user_fields,
            "item": self.item_fields,
            "context": self.context_fields,
            "hist": self.hist_fields,
        }[group]

    # ---- serialisation ---------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        raw: dict[str, Any] = json.loads(text)
        if raw.get("version") != SPEC_VERSION:
            raise ValueError(f"feature spec version {raw.get('version')} is not supported (expected {SPEC_VERSION})")
        for key in ("user_fields", "item_fields", "context_fields", "hist_fields", "zero_is_missing"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSpec":
        return cls.from_json(Path(path).read_text())

    def with_buckets(self, **overrides: int) -> "FeatureSpec":
        buckets = dict(self.buckets)
        buckets.update(overrides)
        d = asdict(self)
        d["buckets"] = buckets
        for key in ("user_fields", "item_fields", "context_fields", "hist_fields", "zero_is_missing"):
            d[key] = tuple(d[key])
        return FeatureSpec(**d)
