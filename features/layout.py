"""Layout constants of the stream-written feature views, importable without Feast
(the stream's state code and the gateway use them; ``features.definitions`` declares
the views with them)."""
from __future__ import annotations

# sliding windows of the user counters: feature name suffix -> seconds
USER_WINDOWS: dict[str, int] = {"1h": 3600, "1d": 86400}
# the windows slide by whole buckets of this many seconds
WINDOW_BUCKET_S = 60
# layout of the count lists (user_counters:counts_*, item_stats:counts)
COUNT_LAYOUT: tuple[str, ...] = (
    "impressions_search", "clicks_search", "orders_search",
    "impressions_rec", "clicks_rec", "orders_rec",
    "impressions_all", "clicks_all", "orders_all",
)
# layout of item_stats:rates (smoothed, see StreamsConfig ctr_prior / cvr_prior / prior_weight)
RATE_LAYOUT: tuple[str, ...] = ("ctr_search", "cvr_search", "ctr_rec", "cvr_rec", "ctr_all", "cvr_all")
# layout of query_item_stats:counts
QUERY_ITEM_COUNT_LAYOUT: tuple[str, ...] = ("impressions", "clicks", "orders")

HISTORY_FEATURES: tuple[str, ...] = ("hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action")

# impression-table column -> "view:feature" that serves it online
ROW_FEATURES: dict[str, str] = {
    "user_segment": "user_profile:user_segment",
    "user_level": "user_profile:user_level",
    **{name: f"user_history:{name}" for name in HISTORY_FEATURES},
    "cate1": "item_catalog:cate1",
    "cate2": "item_catalog:cate2",
    "brand": "item_catalog:brand",
    "price_bucket": "item_catalog:price_bucket",
}
# the gateway's fallback ranking score when Triton is down
POPULARITY_FEATURE = "item_popularity:ctr"
