"""Validate a RankRequest at the edge; every rejection names the field and the reason."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import numpy as np

from streams.catalog import stable_query_id  # the stream jobs' rows use the same ids
from usr.data.tables import SCENARIOS

MAX_QUERY_CHARS = 256
MAX_QUERY_TERMS = 64
MAX_REQUEST_ID_CHARS = 128
MODEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class InvalidRequest(ValueError):
    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class RankQuery:
    """A validated ranking request."""
    request_id: str
    user_id: int
    scenario: str
    query: str
    query_id: int
    query_terms: tuple[int, ...]
    candidates: np.ndarray  # int64 [N], distinct, > 0
    hour: int
    weekday: int
    log_impressions: bool
    ts_ms: int
    model: str


def validate(request, max_candidates: int, now_s: float | None = None) -> RankQuery:
    """``request`` is a ``ranking_pb2.RankRequest``; raises :class:`InvalidRequest`."""
    request_id = request.request_id or uuid.uuid4().hex
    if len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidRequest("request_id", f"must be printable and at most {MAX_REQUEST_ID_CHARS} characters")
    if request.user_id <= 0:
        raise InvalidRequest("user_id", f"must be a positive id, got {request.user_id}")
    if request.scenario not in SCENARIOS:
        raise InvalidRequest("scenario", f"must be one of {list(SCENARIOS)}, got {request.scenario!r}")
    query = request.query
    if request.scenario == "search":
        if not query.strip():
            raise InvalidRequest("query", "a search request needs a non-empty query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest("query", f"longer than {MAX_QUERY_CHARS} characters")
    elif query or request.query_id or len(request.query_terms):
        raise InvalidRequest("query", "a rec request must not carry a query")
    if request.query_id < 0:
        raise InvalidRequest("query_id", "must be >= 0")
    terms = tuple(int(t) for t in request.query_terms)
    if len(terms) > MAX_QUERY_TERMS or any(t <= 0 for t in terms):
        raise InvalidRequest("query_terms", f"at most {MAX_QUERY_TERMS} positive term ids")
    n = len(request.candidates)
    if n == 0:
        raise InvalidRequest("candidates", "empty candidate list")
    if n > max_candidates:
        raise InvalidRequest("candidates", f"{n} candidates, more than the limit of {max_candidates}")
    candidates = np.fromiter(request.candidates, dtype=np.int64, count=n)
    if (candidates <= 0).any():
        raise InvalidRequest("candidates", f"item ids must be positive, got {int(candidates[candidates <= 0][0])}")
    if len(np.unique(candidates)) != n:
        raise InvalidRequest("candidates", "duplicate item ids")
    now_s = time.time() if now_s is None else now_s
    if request.HasField("context") and request.context.HasField("ts_ms"):
        if not 946_684_800_000 <= request.context.ts_ms <= 4_102_444_800_000:
            raise InvalidRequest("context.ts_ms", f"must be ms since the epoch (2000..2100), got {request.context.ts_ms}")
        now_s = request.context.ts_ms / 1000
    if request.model and not MODEL_NAME.fullmatch(request.model):
        raise InvalidRequest("model", f"not a model name: {request.model!r}")
    now = time.gmtime(now_s)
    hour, weekday = now.tm_hour, now.tm_wday
    if request.HasField("context"):
        if request.context.HasField("hour"):
            hour = request.context.hour
            if not 0 <= hour <= 23:
                raise InvalidRequest("context.hour", f"must be 0..23, got {hour}")
        if request.context.HasField("weekday"):
            weekday = request.context.weekday
            if not 0 <= weekday <= 6:
                raise InvalidRequest("context.weekday", f"must be 0..6, got {weekday}")
    query_id = request.query_id or (stable_query_id(query) if request.scenario == "search" else 0)
    return RankQuery(request_id, int(request.user_id), request.scenario, query if request.scenario == "search" else "",
                     int(query_id), terms, candidates, int(hour), int(weekday), bool(request.log_impressions),
                     int(now_s * 1000), request.model)
