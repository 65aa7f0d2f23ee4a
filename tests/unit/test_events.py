"""Event schemas: valid events round-trip; every kind of fault names its field."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from usr.data.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    EventValidationError,
    FunnelChecker,
    encode_event,
    event_key,
    make_event,
    topic_for,
    validate_event,
)

TS = 1_709_550_000_000


def _search(**over):
    d = {"schema_version": SCHEMA_VERSION, "event_type": "impression", "event_id": "r1-i0", "request_id": "r1",
         "user_id": 7, "item_id": 42, "scenario": "search", "query": "greek yoghurt", "position": 0, "ts": TS}
    d.update(over)
    return d


def _rec(**over):
    d = _search(scenario="rec", event_id="r2-i3", request_id="r2", position=3)
    del d["query"]
    d.update(over)
    return d


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_events_round_trip(event_type):
    for raw in (_search(event_type=event_type), _rec(event_type=event_type)):
        ev = validate_event(raw)
        assert isinstance(ev, Event)
        assert ev.event_type == event_type
        again = validate_event(encode_event(ev))
        assert again == ev
        assert event_key(ev) == b"7"


def test_rec_event_has_no_query_on_the_wire_and_accepts_empty_query():
    ev = validate_event(_rec())
    assert ev.query == ""
    assert "query" not in json.loads(encode_event(ev))
    assert validate_event(_rec(query="")).query == ""
    assert validate_event(_rec(query=None)).query == ""


def _field_of(raw) -> str:
    with pytest.raises(EventValidationError) as exc:
        validate_event(raw)
    assert exc.value.reason
    assert str(exc.value).startswith(exc.value.field)
    return exc.value.field


def test_bad_json_and_non_objects_name_the_message():
    assert _field_of(b"{not json") == "$"
    assert _field_of(b"[1, 2]") == "$"
    assert _field_of(b"\xff\xfe") == "$"
    assert _field_of(42) == "$"


@pytest.mark.parametrize("field", ["schema_version", "event_type", "event_id", "request_id", "user_id",
                                   "item_id", "scenario", "position", "ts"])
def test_missing_field_is_named(field):
    raw = _search()
    del raw[field]
    assert _field_of(json.dumps(raw).encode()) == field


@pytest.mark.parametrize("field,value", [
    ("user_id", "7"), ("user_id", True), ("user_id", -1), ("item_id", 4.2), ("position", -1),
    ("position", "0"), ("ts", 1_709_550_000), ("ts", float(TS)), ("event_id", ""), ("request_id", 5),
    ("schema_version", "1"), ("schema_version", 99), ("event_type", 3), ("scenario", 1),
])
def test_wrong_type_or_value_is_named(field, value):
    assert _field_of(_search(**{field: value})) == field


def test_unknown_scenario_and_event_type_are_named():
    with pytest.raises(EventValidationError) as exc:
        validate_event(_search(scenario="feed"))
    assert exc.value.field == "scenario" and "feed" in exc.value.reason
    with pytest.raises(EventValidationError) as exc:
        validate_event(_search(event_type="cart"))
    assert exc.value.field == "event_type" and "cart" in exc.value.reason


def test_search_needs_a_query_and_rec_must_not_have_one():
    raw = _search()
    del raw["query"]
    assert _field_of(raw) == "query"
    assert _field_of(_search(query="   ")) == "query"
    assert _field_of(_search(query=3)) == "query"
    assert _field_of(_rec(query="milk")) == "query"


def test_unknown_field_is_named():
    assert _field_of(_search(querry="milk")) == "querry"


def test_make_event_drops_empty_rec_query_and_validates():
    ev = make_event(event_type="click", event_id="e", request_id="r", user_id=1, item_id=2,
                    scenario="rec", query="", position=0, ts=TS)
    assert ev.schema_version == SCHEMA_VERSION and ev.query == ""
    with pytest.raises(EventValidationError):
        make_event(event_type="click", event_id="e", request_id="r", user_id=1, item_id=2,
                   scenario="search", position=0, ts=TS)


def test_topic_for_uses_the_configured_topics():
    topics = SimpleNamespace(impressions="t.i", clicks="t.c", orders="t.o")
    assert [topic_for(t, topics) for t in EVENT_TYPES] == ["t.i", "t.c", "t.o"]
    with pytest.raises(EventValidationError):
        topic_for("cart", topics)


def test_funnel_checker_flags_orders_without_click():
    fc = FunnelChecker(capacity=2)
    click = validate_event(_search(event_type="click"))
    order = validate_event(_search(event_type="order"))
    assert fc.observe(order) is not None
    assert fc.observe(click) is None
    assert fc.observe(order) is None
    # forgetting: after two newer clicks the first one is out of memory
    fc.observe(validate_event(_search(event_type="click", item_id=1)))
    fc.observe(validate_event(_search(event_type="click", item_id=2)))
    assert fc.observe(order) is not None
