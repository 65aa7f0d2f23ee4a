"""Event schemas: the one definition of impression, click and order events.

Producers (the simulator, the replay tool, the gateway's served-list logger), the
stream jobs and the tests all build, encode and validate events through this module.

Wire format: one JSON object (UTF-8) per Kafka message, key = ``str(user_id)``,
one topic per event type (``config.kafka.topics.impressions|clicks|orders``).

Fields of schema version 1 (the same for all three event types):

==============  =======  ==========================================================
field           type     meaning
==============  =======  ==========================================================
schema_version  int      version of this schema (1)
event_type      str      "impression" | "click" | "order"
event_id        str      unique id of this event (idempotency key downstream)
request_id      str      id of the served list (one search or one feed request)
user_id         int      >= 0
item_id         int      >= 0; item attributes come from the item catalog
scenario        str      "search" | "rec"
query           str      search: the query text, non-empty; rec: absent or ""
position        int      0-based slot of the item in the served list
ts              int      ms since the Unix epoch (UTC), between 2000 and 2100
==============  =======  ==========================================================

A click or an order refers to its impression by ``(request_id, item_id)``. An order
without a preceding click is a stream-level fault, not a schema fault:
:class:`FunnelChecker` is the helper for that check. Unknown fields are rejected so
that a misspelt field name is caught at the edge instead of being silently dropped;
new fields come with a new ``schema_version``.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pyarrow as pa

from usr.data.tables import SCENARIOS

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)
EVENT_TYPES = ("impression", "click", "order")
TS_MIN_MS = 946_684_800_000    # 2000-01-01: smaller values are almost surely seconds, not ms
TS_MAX_MS = 4_102_444_800_000  # 2100-01-01


# The raw event log on disk (``events.parquet``): all event types in one time-ordered
# table; ``query`` is "" for rec. Each row is one event's wire fields.
EVENT_LOG_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("event_type", pa.string()),
        ("event_id", pa.string()),
        ("request_id", pa.string()),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("scenario", pa.string()),
        ("query", pa.string()),
        ("position", pa.int32()),
        ("ts", pa.int64()),
    ]
)


class EventValidationError(ValueError):
    """An event does not follow its schema. ``field`` names the offending field
    (``"$"`` for the message as a whole, e.g. bad JSON); ``reason`` says what is wrong."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event. ``query`` is "" for rec events."""

    event_type: str
    event_id: str
    request_id: str
    user_id: int
    item_id: int
    scenario: str
    position: int
    ts: int
    query: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The wire form: a JSON-able dict; ``query`` is left out for rec events."""
        d: dict[str, Any] = {
            "schema_version": self.schema_version,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "scenario": self.scenario,
            "position": self.position,
            "ts": self.ts,
        }
        if self.scenario == "search":
            d["query"] = self.query
        return d


# --- field checks -------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_str_nonempty(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a string, got {type(v).__name__}"
    if not v:
        return "must not be empty"
    return None


def _check_nonneg_int(v: Any) -> str | None:
    if not _is_int(v):
        return f"must be an integer, got {type(v).__name__}"
    if v < 0:
        return f"must be >= 0, got {v}"
    return None


def _check_ts(v: Any) -> str | None:
    if not _is_int(v):
        return f"must be an integer (ms since epoch), got {type(v).__name__}"
    if not TS_MIN_MS <= v < TS_MAX_MS:
        return f"must be ms since the epoch between 2000 and 2100, got {v}"
    return None


def _check_scenario(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a string, got {type(v).__name__}"
    if v not in SCENARIOS:
        return f"unknown scenario {v!r} (expected one of {', '.join(SCENARIOS)})"
    return None


@dataclass(frozen=True)
class FieldSpec:
    """One required field of a schema and the check its value must pass."""

    name: str
    check: Callable[[Any], str | None]


_COMMON_V1: tuple[FieldSpec, ...] = (
    FieldSpec("event_id", _check_str_nonempty),
    FieldSpec("request_id", _check_str_nonempty),
    FieldSpec("user_id", _check_nonneg_int),
    FieldSpec("item_id", _check_nonneg_int),
    FieldSpec("scenario", _check_scenario),
    FieldSpec("position", _check_nonneg_int),
    FieldSpec("ts", _check_ts),
)

# version -> event type -> required fields (besides schema_version, event_type, query)
SCHEMAS: dict[int, dict[str, tuple[FieldSpec, ...]]] = {
    1: {"impression": _COMMON_V1, "click": _COMMON_V1, "order": _COMMON_V1},
}
_OPTIONAL = ("query",)
_HEADER = ("schema_version", "event_type")


def _parse(raw: bytes | bytearray | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventValidationError("$", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not isinstance(raw, str):
        raise EventValidationError("$", f"expected JSON bytes or a dict, got {type(raw).__name__}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EventValidationError("$", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise EventValidationError("$", f"must be a JSON object, got {type(data).__name__}")
    return data


def validate_event(raw: bytes | bytearray | str | Mapping[str, Any]) -> Event:
    """Parse and check one event (JSON bytes/str or an already decoded dict).

    Raises :class:`EventValidationError` naming the first offending field.
    """
    data = _parse(raw)

    version = data.get("schema_version")
    if "schema_version" not in data:
        raise EventValidationError("schema_version", "missing")
    if not _is_int(version):
        raise EventValidationError("schema_version", f"must be an integer, got {type(version).__name__}")
    if version not in SCHEMAS:
        raise EventValidationError("schema_version", f"unsupported version {version} (supported: {SUPPORTED_VERSIONS})")

    if "event_type" not in data:
        raise EventValidationError("event_type", "missing")
    event_type = data["event_type"]
    if not isinstance(event_type, str):
        raise EventValidationError("event_type", f"must be a string, got {type(event_type).__name__}")
    fields = SCHEMAS[version].get(event_type)
    if fields is None:
        raise EventValidationError("event_type", f"unknown event type {event_type!r} (expected one of {', '.join(EVENT_TYPES)})")

    for spec in fields:
        if spec.name not in data:
            raise EventValidationError(spec.name, "missing")
        problem = spec.check(data[spec.name])
        if problem:
            raise EventValidationError(spec.name, problem)

    known = {*_HEADER, *_OPTIONAL, *(s.name for s in fields)}
    for name in data:
        if name not in known:
            raise EventValidationError(str(name), f"unknown field for {event_type} v{version}")

    scenario = data["scenario"]
    query = data.get("query")
    if scenario == "search":
        if query is None:
            raise EventValidationError("query", "missing: a search event needs its query")
        if not isinstance(query, str):
            raise EventValidationError("query", f"must be a string, got {type(query).__name__}")
        if not query.strip():
            raise EventValidationError("query", "must not be empty for a search event")
    else:
        if query not in (None, ""):
            raise EventValidationError("query", "must be absent or empty for a rec event")
        query = ""

    return Event(
        event_type=event_type,
        event_id=data["event_id"],
        request_id=data["request_id"],
        user_id=data["user_id"],
        item_id=data["item_id"],
        scenario=scenario,
        position=data["position"],
        ts=data["ts"],
        query=query,
        schema_version=version,
    )


def make_event(**fields: Any) -> Event:
    """Build an event from keyword fields and validate it (producers use this)."""
    fields.setdefault("schema_version", SCHEMA_VERSION)
    if fields.get("scenario") == "rec" and fields.get("query") in (None, ""):
        fields.pop("query", None)
    return validate_event(fields)


def encode_event(event: Event | Mapping[str, Any]) -> bytes:
    """The Kafka message value: compact UTF-8 JSON of the wire form."""
    d = event.to_dict() if isinstance(event, Event) else dict(event)
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_key(event: Event | Mapping[str, Any]) -> bytes:
    """The Kafka message key: the user id as a decimal string (events of one user stay ordered)."""
    user_id = event.user_id if isinstance(event, Event) else event["user_id"]
    return str(int(user_id)).encode("ascii")


def topic_for(event_type: str, topics: Any) -> str:
    """Topic name of an event type, from ``config.kafka.topics`` (attributes impressions/clicks/orders)."""
    attr = {"impression": "impressions", "click": "clicks", "order": "orders"}.get(event_type)
    if attr is None:
        raise EventValidationError("event_type", f"unknown event type {event_type!r}")
    return getattr(topics, attr)


class FunnelChecker:
    """Stream-level check that an order follows a click of the same (request, item).

    Remembers the last ``capacity`` clicks (oldest forgotten first). ``observe`` returns
    ``None`` when the event is fine and a reason string for an order with no known click.
    """

    def __init__(self, capacity: int = 1_000_000):
        self.capacity = capacity
        self._clicks: OrderedDict[tuple[str, int], None] = OrderedDict()

    def observe(self, event: Event) -> str | None:
        key = (event.request_id, event.item_id)
        if event.event_type == "click":
            self._clicks[key] = None
            self._clicks.move_to_end(key)
            if len(self._clicks) > self.capacity:
                self._clicks.popitem(last=False)
            return None
        if event.event_type == "order" and key not in self._clicks:
            return f"order without a preceding click for request {event.request_id} item {event.item_id}"
        return None
