"""AliExpress Searching System dataset (Tianchi 74690; processed CSV form) -> impression table.

Input: CSV with ``search_id, categorical_1..16, numerical_1..63, click, conversion``
(the form distributed by torch-rechub and FuxiCTR). Features are anonymous; the
publisher says user and query features are the same for every item of a result page,
and in the published samples ``categorical_1..9`` are constant within a page (the
user/query part) while ``categorical_10..16`` vary (the item part).

Mapping:
- scenario "search" (the dataset is search traffic only; its "scenarios" are countries,
  kept in the request id). request_id ``ae-<country>-<search_id>``; position = the row's
  order within its page in the file (the display rank is not published).
- click = ``click``; order = ``conversion`` (conversion implies click).
- query_id = a stable hash of the page's user/query features (``categorical_1..9``): the
  only query-side information published; query text and terms are empty.
- user and item ids are not published: user_id = item_id = 0, item fields 0, no history.
- global labels = scenario labels; time: ``day`` = the index of the file in ``paths``
  (the publisher splits train and test along time), ts = day * 86400000, hour/weekday 0.
- p_click/p_ctcvr: NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from usr.data.loaders.common import MS_DAY, build_table, positions_in_request, stable_id

USER_QUERY_COLUMNS = tuple(f"categorical_{i}" for i in range(1, 10))


def load_aliexpress(paths: str | Path | Sequence[str | Path], country: str = "xx",
                    user_query_columns: Sequence[str] = USER_QUERY_COLUMNS) -> pa.Table:
    """Read one or more AliExpress CSVs (in time order: train, then test) into an
    IMPRESSION_SCHEMA table; file k gets day k."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for day, path in enumerate(paths):
        df = pd.read_csv(path)
        missing = [c for c in ("search_id", "click", "conversion", *user_query_columns) if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: not an AliExpress CSV, missing columns {missing}")
        df["_day"] = day
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    n = len(df)
    day = df["_day"].to_numpy(np.int32)
    request = np.array([f"ae-{country}-d{d}-{s}" for d, s in zip(day, df["search_id"].astype(str))], dtype=object)
    pos = positions_in_request(request)
    uq = df[list(user_query_columns)].astype(str).agg("_".join, axis=1)
    qid = np.array([stable_id(k, "ae-user-query") for k in uq], dtype=np.int64)
    click = (df["click"].to_numpy() > 0).astype(np.int8)
    order = ((df["conversion"].to_numpy() > 0) & (click > 0)).astype(np.int8)
    return build_table({
        "event_id": [f"{r}-{p}" for r, p in zip(request, pos)],
        "request_id": list(request),
        "ts": day.astype(np.int64) * MS_DAY,
        "day": day,
        "user_id": np.zeros(n, np.int64),
        "item_id": np.zeros(n, np.int64),
        "scenario": ["search"] * n,
        "query_id": qid,
        "position": pos,
        "click": click,
        "order": order,
        "global_click": click,
        "global_order": order,
    })
