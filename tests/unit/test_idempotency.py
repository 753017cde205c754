"""Idempotency-Keys: derived from the event alone, stable, distinct, at most 100 chars."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brew_bridge.mapping.expressions import ExpressionError
from brew_bridge.mapping.keys import (
    MAX_KEY_LENGTH,
    KeyFailure,
    bound_key,
    compile_key,
    default_key_templates,
    parse_key_template,
)

HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,100}")


def context(event: Any, route: str = "receipt", **extra: Any) -> dict[str, Any]:
    base = {"event": event, "headers": {}, "topic": "payments", "partition": 3, "offset": 41}
    return {**base, "key": None, "route": route, **extra}


def test_default_key_is_route_and_event_id() -> None:
    derive = compile_key("receipt")
    assert derive(context({"id": "evt_1"})) == "receipt:evt_1"
    assert derive.event_id(context({"id": "evt_1"})) == "evt_1"


def test_default_falls_back_to_record_coordinates() -> None:
    derive = compile_key("receipt")
    for event in ({}, {"id": None}, {"id": ""}):
        assert derive(context(event)) == "receipt:payments:3:41"
        assert derive.event_id(context(event)) is None


def test_id_path_is_configurable() -> None:
    derive = compile_key("welcome", id_path="event.data.id")
    assert derive(context({"data": {"id": "user_1"}}, route="welcome")) == "welcome:user_1"
    assert default_key_templates("event.data.id") == (
        "{route}:{event.data.id}",
        "{route}:{topic}:{partition}:{offset}",
    )


def test_numeric_ids_render_as_text() -> None:
    derive = compile_key("order_confirmation")
    event = {"id": 5678901234567}
    assert derive(context(event, route="order_confirmation")) == "order_confirmation:5678901234567"


def test_header_ids() -> None:
    derive = compile_key("welcome", id_path='headers."svix-id"')
    ctx = context({}, route="welcome", headers={"svix-id": "msg_1"})
    assert derive(ctx) == "welcome:msg_1"


def test_one_event_two_routes_two_keys() -> None:
    event = {"id": "evt_1"}
    receipt = compile_key("receipt")(context(event, route="receipt"))
    crm = compile_key("crm")(context(event, route="crm"))
    assert receipt != crm
    assert {receipt, crm} == {"receipt:evt_1", "crm:evt_1"}


def test_custom_template_and_its_fallbacks() -> None:
    derive = compile_key("r", ["{route}:{event.data.object.id}:{event.type}", "{route}:{event.id}"])
    full = {"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}
    assert derive(context(full, route="r")) == "r:in_1:invoice.paid"
    assert derive(context({"id": "evt_1"}, route="r")) == "r:evt_1"


def test_custom_template_with_a_missing_placeholder_fails_loudly() -> None:
    derive = compile_key("r", ["{route}:{event.order.id}"])
    result = derive(context({"id": "evt_1"}, route="r"))
    assert isinstance(result, KeyFailure)
    assert result.expression == "{route}:{event.order.id}"
    assert "{event.order.id} is missing" in result.message


def test_key_expression_errors_are_failures() -> None:
    derive = compile_key("r", ["{route}:{length(event.n)}"])
    result = derive(context({"n": 3}, route="r"))
    assert isinstance(result, KeyFailure)
    assert "invalid type" in result.message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{event.id}", "no {route} placeholder"),
        ("{route}-static", "takes nothing from the event"),
        ("{route}:{data.id}", "not in the context"),
        ("{route}:{event.id", "never closed"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_key_template(template)
    with pytest.raises(ExpressionError) as info:
        compile_key("r", ["{route}:{event.id}", template])
    assert info.value.loc == (1,)


def test_long_keys_are_hashed_stably() -> None:
    raw = "order_confirmation:" + "x" * 200
    key = bound_key(raw)
    assert len(key) == MAX_KEY_LENGTH
    assert key.startswith("order_confirmation:xxx")
    assert re.fullmatch(r".{35}:[0-9a-f]{64}", key)
    assert bound_key(raw) == key
    assert bound_key(raw + "y") != key


def test_unsafe_characters_are_hashed() -> None:
    for raw in ("r:évènement", "r:a b", "r:line\nbreak", "r:\ud800"):
        key = bound_key(raw)
        assert HEADER_SAFE.fullmatch(key), raw
        assert key.startswith("r:")
        assert key != raw


def test_short_safe_keys_are_kept() -> None:
    assert (
        bound_key("receipt:evt_1PLqYbCZ6qsJgndJ0a7Hs1Tz") == "receipt:evt_1PLqYbCZ6qsJgndJ0a7Hs1Tz"
    )
    assert bound_key("x" * 100) == "x" * 100
    assert len(bound_key("x" * 101)) == 100


# --------------------------------------------------------------------------- properties

ROUTES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", fullmatch=True)
IDS = st.text(min_size=1, max_size=150)
EVENTS = st.fixed_dictionaries(
    {"id": IDS},
    optional={
        "type": st.text(max_size=10),
        "data": st.dictionaries(st.text(max_size=5), st.integers()),
    },
)


@settings(max_examples=300)
@given(route=ROUTES, event=EVENTS, partition=st.integers(0, 99), offset=st.integers(0, 2**40))
def test_same_event_same_key(
    route: str, event: dict[str, Any], partition: int, offset: int
) -> None:
    derive = compile_key(route)
    first = derive(context(event, route=route, partition=partition, offset=offset))
    # the same event, re-read elsewhere (another copy, another partition and offset)
    again = compile_key(route)(context(copy.deepcopy(event), route=route, offset=offset + 1))
    assert isinstance(first, str)
    assert first == again


@settings(max_examples=300)
@given(route=ROUTES, ids=st.lists(IDS, min_size=2, max_size=2, unique=True))
def test_different_ids_different_keys(route: str, ids: list[str]) -> None:
    derive = compile_key(route)
    first, second = (derive(context({"id": i}, route=route)) for i in ids)
    assert first != second


@settings(max_examples=300)
@given(
    route=ROUTES,
    event=st.dictionaries(st.sampled_from(["id", "x"]), st.none() | st.integers() | IDS),
    offset=st.integers(0, 2**63),
)
def test_keys_are_always_short_and_header_safe(
    route: str, event: dict[str, Any], offset: int
) -> None:
    key = compile_key(route)(context(event, route=route, offset=offset))
    assert isinstance(key, str)
    assert HEADER_SAFE.fullmatch(key)


@given(ids=st.lists(IDS, min_size=2, max_size=2, unique=True))
def test_two_routes_never_share_a_key_for_an_event(ids: list[str]) -> None:
    keys = {
        compile_key(route)(context({"id": event_id}, route=route))
        for route in ("receipt", "crm")
        for event_id in ids
    }
    assert len(keys) == 4
