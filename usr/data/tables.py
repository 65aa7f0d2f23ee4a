"""The impression table: the one training-row format shared by the simulator, the
real-log loaders, the stream jobs (labelled rows) and the trainer.

One row per impression. Lists are newest-first and hold at most ``HISTORY_LEN``
entries (no padding in the table; padding happens when tensors are built).
Files: ``<dir>/impressions/part-*.parquet`` (or one ``impressions.parquet``),
sorted by ``ts``.
"""
from __future__ import annotations

import pyarrow as pa

HISTORY_LEN = 50

SCENARIOS = ("search", "rec")          # scenario names on the wire and in tables
SCENARIO_ID = {"search": 0, "rec": 1}  # scenario ids inside the model
SOURCE_SEARCH, SOURCE_REC = 1, 2       # hist_source values (0 = padding)
ACTION_CLICK, ACTION_ORDER = 1, 2      # hist_action values (0 = padding)

IMPRESSION_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),        # the impression event's id (idempotency key)
        ("request_id", pa.string()),
        ("ts", pa.int64()),               # ms since the Unix epoch, UTC
        ("day", pa.int32()),              # day index (0 = first day of the log): time split key
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("scenario", pa.string()),        # "search" | "rec"
        ("query", pa.string()),           # raw query text, "" for rec
        ("query_id", pa.int64()),         # 0 for rec / unknown
        ("query_terms", pa.list_(pa.int64())),  # term ids, empty for rec
        ("position", pa.int32()),         # 0-based slot in the served list
        ("hour", pa.int32()),
        ("weekday", pa.int32()),
        # user profile buckets (0 = unknown)
        ("user_segment", pa.int32()),
        ("user_level", pa.int32()),
        # item fields (0 = unknown)
        ("cate1", pa.int64()),
        ("cate2", pa.int64()),
        ("brand", pa.int64()),
        ("price_bucket", pa.int32()),
        # behaviour history as of the impression, newest first, <= HISTORY_LEN
        ("hist_item_id", pa.list_(pa.int64())),
        ("hist_cate2", pa.list_(pa.int64())),
        ("hist_brand", pa.list_(pa.int64())),
        ("hist_source", pa.list_(pa.int8())),   # SOURCE_SEARCH | SOURCE_REC
        ("hist_action", pa.list_(pa.int8())),   # ACTION_CLICK | ACTION_ORDER
        # labels
        ("click", pa.int8()),
        ("order", pa.int8()),             # order implies click
        ("global_click", pa.int8()),      # same user+item clicked in any scenario within the window
        ("global_order", pa.int8()),
        # ground truth (simulator only; NaN for real logs)
        ("p_click", pa.float32()),        # true P(click | impression)
        ("p_ctcvr", pa.float32()),        # true P(click and order | impression)
    ]
)

IMPRESSION_COLUMNS = tuple(IMPRESSION_SCHEMA.names)
