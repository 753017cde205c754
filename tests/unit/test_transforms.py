"""Transforms: every feature of the mapping language, and "never raises" as a property."""

from __future__ import annotations

import copy
import json
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError

from brew_bridge.config import BridgeConfig, FieldSpec
from brew_bridge.mapping.coercion import _decimal_text, coerce
from brew_bridge.mapping.expressions import (
    CONTEXT_ROOTS,
    ITEM_ROOTS,
    ExpressionError,
    _fast_search,
    _joined,
    compile_expression,
    is_truthy,
)
from brew_bridge.mapping.payload import CompiledMapping, Mapped, MappingFailure, compile_mapping
from brew_bridge.mapping.templates import parse_template


def mapping(fields: dict[str, Any], route: str = "r") -> CompiledMapping:
    return compile_mapping(route, {k: FieldSpec.model_validate(v) for k, v in fields.items()})


def context(event: Any, **extra: Any) -> dict[str, Any]:
    base = {"event": event, "headers": {}, "topic": "t", "partition": 2, "offset": 7, "key": None}
    return {**base, "route": "r", **extra}


def mapped(fields: dict[str, Any], event: Any, **extra: Any) -> dict[str, Any]:
    result = mapping(fields)(context(event, **extra))
    assert isinstance(result, Mapped), result
    return result.payload


def failure(fields: dict[str, Any], event: Any) -> MappingFailure:
    result = mapping(fields)(context(event))
    assert isinstance(result, MappingFailure), result
    return result


# --------------------------------------------------------------------------- paths


def test_path_shorthand_and_nested_path() -> None:
    event = {"data": {"object": {"email": "a@example.com", "items": [{"sku": "A"}]}}}
    payload = mapped(
        {"email": "event.data.object.email", "first": {"path": "event.data.object.items[0].sku"}},
        event,
    )
    assert payload == {"email": "a@example.com", "first": "A"}


def test_context_beyond_the_event() -> None:
    payload = mapped(
        {
            "topic": "topic",
            "where": {"template": "{topic}/{partition}/{offset}"},
            "h": 'headers."x-shop"',
            "k": "key",
            "r": "route",
        },
        {},
        headers={"x-shop": "acme"},
        key="k1",
    )
    assert payload == {"topic": "t", "where": "t/2/7", "h": "acme", "k": "k1", "r": "r"}


def test_missing_values_are_left_out() -> None:
    assert mapped({"email": "event.email", "name": "event.name"}, {"name": "Ada"}) == {
        "name": "Ada"
    }


def test_fallback_paths_take_the_first_non_null() -> None:
    fields = {"email": {"path": ["event.receipt_email", "event.billing.email", "event.x"]}}
    assert mapped(fields, {"receipt_email": None, "billing": {"email": "b@x"}}) == {"email": "b@x"}
    assert mapped(fields, {"receipt_email": "r@x", "billing": {"email": "b@x"}}) == {"email": "r@x"}
    # "" and false are values, not missing
    assert mapped(fields, {"receipt_email": ""}) == {"email": ""}


def test_default_is_used_as_written() -> None:
    fields = {"plan": {"path": "event.plan", "default": "free"}}
    assert mapped(fields, {}) == {"plan": "free"}
    assert mapped(fields, {"plan": None}) == {"plan": "free"}
    assert mapped(fields, {"plan": "pro"}) == {"plan": "pro"}
    # a default is the final value: it is not converted
    money = {"amount": {"path": "event.cents", "type": "decimal", "exponent": 2, "default": "0.00"}}
    assert mapped(money, {}) == {"amount": "0.00"}


def test_expressions_compute_values() -> None:
    fields = {
        "recurring": "event.subscription != `null`",
        "count": "length(event.items)",
        "skus": "event.items[].sku",
    }
    event = {"subscription": "sub_1", "items": [{"sku": "A"}, {"sku": "B"}]}
    assert mapped(fields, event) == {"recurring": True, "count": 2, "skus": ["A", "B"]}


# --------------------------------------------------------------------------- literals


def test_literals() -> None:
    fields = {"n": {"value": 3}, "s": {"value": "web"}, "b": {"value": False}, "l": {"value": [1]}}
    assert mapped(fields, {}) == {"n": 3, "s": "web", "b": False, "l": [1]}


def test_literal_containers_are_not_shared_between_events() -> None:
    compiled = mapping({"tags": {"value": ["a"]}})
    first = compiled(context({}))
    assert isinstance(first, Mapped)
    first.payload["tags"].append("mutated")
    second = compiled(context({}))
    assert isinstance(second, Mapped)
    assert second.payload == {"tags": ["a"]}


# --------------------------------------------------------------------------- templates


def test_template_renders_placeholders() -> None:
    fields = {"name": {"template": "{event.first} {event.last}"}}
    assert mapped(fields, {"first": "Ada", "last": "Lovelace"}) == {"name": "Ada Lovelace"}


def test_template_renders_numbers_and_booleans_as_json() -> None:
    fields = {"t": {"template": "{event.n}|{event.f}|{event.b}|{event.o}"}}
    event = {"n": 42, "f": 1.5, "b": True, "o": {"b": 1, "a": [2]}}
    assert mapped(fields, event) == {"t": '42|1.5|true|{"a":[2],"b":1}'}


def test_template_fallbacks_and_missing() -> None:
    fields = {
        "name": {"template": ["{event.first} {event.last}", "{event.first}"], "default": "there"}
    }
    assert mapped(fields, {"first": "Ada", "last": "L"}) == {"name": "Ada L"}
    assert mapped(fields, {"first": "Ada"}) == {"name": "Ada"}
    assert mapped(fields, {}) == {"name": "there"}


def test_template_braces_and_quoting() -> None:
    template = parse_template('{{literal}} {headers."x-id"} {event.a || `"}"`}')
    assert template.render(context({}, headers={"x-id": "h1"})) == "{literal} h1 }"
    assert [p.text for p in template.placeholders] == ['headers."x-id"', 'event.a || `"}"`']


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {event.name", "never closed"),
        ("Hi }", "closes nothing"),
        ("Hi {}", "empty placeholder"),
        ("Hi {event..a}", "invalid JMESPath"),
    ],
)
def test_template_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_template(text)


def test_template_never_calls_format() -> None:
    # format-spec and attribute syntax is just text (or a JMESPath) here, never Python
    assert mapped({"t": {"template": "{{0.__class__}} {event.a}"}}, {"a": "x"}) == {
        "t": "{0.__class__} x"
    }


# --------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("value", "type_", "options", "expected"),
    [
        (42, "string", {}, "42"),
        (1.5, "string", {}, "1.5"),
        (True, "string", {}, "true"),
        ("7", "int", {}, 7),
        (" -7 ", "int", {}, -7),
        (7.0, "int", {}, 7),
        ("2.5", "float", {}, 2.5),
        (3, "float", {}, 3.0),
        ("yes", "bool", {}, True),
        ("False", "bool", {}, False),
        (1, "bool", {}, True),
        ("2024-05-28", "date", {}, "2024-05-28"),
        ("2024-05-28T23:30:00-05:00", "date", {}, "2024-05-28"),  # the date as written
        (1716883200, "date", {}, "2024-05-28"),
        ("2024-05-28T09:14:52-04:00", "datetime", {}, "2024-05-28T13:14:52Z"),
        ("2024-05-28T08:00:00", "datetime", {}, "2024-05-28T08:00:00Z"),  # naive = UTC
        ("2024-05-28T08:00:00Z", "datetime", {}, "2024-05-28T08:00:00Z"),
        (1716883200, "datetime", {}, "2024-05-28T08:00:00Z"),
        (1716883200123, "datetime", {"epoch_unit": "ms"}, "2024-05-28T08:00:00.123000Z"),
        (2900, "decimal", {"exponent": 2}, "29.00"),
        (1, "decimal", {"exponent": 2}, "0.01"),
        ("2900", "decimal", {"exponent": 2}, "29.00"),
        (500, "decimal", {}, "500"),  # JPY: zero-decimal currency
        ("50.0", "decimal", {"places": 2}, "50.00"),
        (29.999, "decimal", {"places": 2}, "30.00"),
        (12345, "decimal", {"exponent": 3, "places": 1}, "12.3"),
        ("1E+2", "decimal", {}, "100"),
    ],
)
def test_coercions(value: Any, type_: str, options: dict[str, Any], expected: Any) -> None:
    result = coerce(value, type_, **options)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        ({"a": 1}, "string"),
        ([1], "string"),
        ("7.5", "int"),
        (7.5, "int"),
        (True, "int"),
        ("seven", "int"),
        ("nan", "float"),
        ("inf", "float"),
        (True, "float"),
        ("maybe", "bool"),
        (2, "bool"),
        ("28/05/2024", "date"),
        ("yesterday", "datetime"),
        (10**20, "datetime"),
        (True, "datetime"),
        ("twenty-nine", "decimal"),
        ("NaN", "decimal"),
        ("Infinity", "decimal"),
        ("1e999999", "decimal"),
        (True, "decimal"),
        ([2900], "decimal"),
    ],
)
def test_coercion_failures_say_what(value: Any, type_: str) -> None:
    with pytest.raises(ValueError, match=f"cannot convert .* to {type_}"):
        coerce(value, type_)


@given(
    value=st.integers()
    | st.integers(min_value=-(10**50), max_value=10**50)
    | st.sampled_from([0, -1, 10**31 - 1, 10**31, 10**49 - 1, 10**49]),
    exponent=st.integers(0, 18),
    places=st.none() | st.integers(0, 18),
)
def test_integer_decimals_match_the_decimal_path(
    value: int, exponent: int, places: int | None
) -> None:
    """Integers skip Decimal when no rounding is needed; the text must be the same."""

    def outcome(convert: Any) -> Any:
        try:
            return convert()
        except ValueError as exc:
            return str(exc)

    fast = outcome(lambda: coerce(value, "decimal", exponent=exponent, places=places))
    assert fast == outcome(lambda: _decimal_text(value, exponent, places))


def test_coercion_failure_names_route_field_and_expression() -> None:
    fields = {"amount": {"path": "event.amount", "type": "decimal", "exponent": 2}}
    result = failure(fields, {"amount": "twenty-nine"})
    assert (result.route, result.field, result.expression) == ("r", "amount", "event.amount")
    assert result.message == 'cannot convert string "twenty-nine" to decimal'
    assert result.describe() == (
        "route 'r': field 'amount' (expression 'event.amount'): "
        'cannot convert string "twenty-nine" to decimal'
    )


def test_long_values_are_cut_in_messages() -> None:
    result = failure({"n": {"path": "event.n", "type": "int"}}, {"n": "x" * 500})
    assert len(result.message) < 120


# --------------------------------------------------------------------------- objects, arrays


def test_nested_objects() -> None:
    fields = {
        "totals": {
            "fields": {
                "total": {"path": "event.total", "type": "decimal", "places": 2},
                "currency": "event.currency",
                "missing": "event.nope",
            }
        }
    }
    assert mapped(fields, {"total": "9.5", "currency": "USD"}) == {
        "totals": {"total": "9.50", "currency": "USD"}
    }


def test_each_maps_every_element_with_item_and_index() -> None:
    fields = {
        "lineItems": {
            "path": "event.line_items",
            "each": {
                "fields": {
                    "position": "index",
                    "title": "item.title",
                    "quantity": {"path": "item.quantity", "type": "int"},
                    "currency": "event.currency",  # the outer context is still there
                }
            },
        }
    }
    event = {"currency": "EUR", "line_items": [{"title": "A", "quantity": "2"}, {"title": "B"}]}
    assert mapped(fields, event) == {
        "lineItems": [
            {"position": 0, "title": "A", "quantity": 2, "currency": "EUR"},
            {"position": 1, "title": "B", "currency": "EUR"},
        ]
    }


def test_each_of_scalars_leaves_out_missing_elements() -> None:
    fields = {"skus": {"path": "event.items", "each": {"path": "item.sku"}}}
    assert mapped(fields, {"items": [{"sku": "A"}, {}, {"sku": "C"}]}) == {"skus": ["A", "C"]}
    assert mapped(fields, {"items": []}) == {"skus": []}
    assert mapped(fields, {}) == {}


def test_each_needs_an_array() -> None:
    fields = {"skus": {"path": "event.items", "each": {"path": "item.sku"}}}
    result = failure(fields, {"items": {"edges": []}})
    assert (result.field, result.expression) == ("skus", "event.items")
    assert "each: needs an array, got object" in result.message


def test_errors_inside_each_name_the_element_field() -> None:
    fields = {
        "items": {
            "path": "event.items",
            "each": {"fields": {"q": {"path": "item.q", "type": "int"}}},
        }
    }
    result = failure(fields, {"items": [{"q": 1}, {"q": "many"}]})
    assert (result.field, result.expression) == ("items[].q", "item.q")


def test_item_outside_each_is_a_compile_error() -> None:
    with pytest.raises(ExpressionError) as info:
        mapping({"a": {"fields": {"b": "item.x"}}})
    assert info.value.loc == ("a", "fields", "b", "path", 0)


def test_jmespath_runtime_errors_are_mapping_failures() -> None:
    result = failure({"n": "length(event.n)"}, {"n": 5})
    assert result.expression == "length(event.n)"
    assert "invalid type" in result.message


# --------------------------------------------------------------------------- expressions


def test_roots_are_checked() -> None:
    with pytest.raises(ExpressionError, match="'data', which is not in the context"):
        compile_expression("data.email", roots=frozenset({"event"}))
    compile_expression("event.data.email", roots=frozenset({"event"}))
    compile_expression("[event.a, headers.b] | [0]", roots=frozenset({"event", "headers"}))
    with pytest.raises(ExpressionError):
        compile_expression("join(', ', [event.a, data.b])", roots=frozenset({"event"}))
    # inside projections and filters names are relative to the elements
    compile_expression("event.items[?price > `5`].sku", roots=frozenset({"event"}))


@pytest.mark.parametrize(
    ("value", "truthy"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), ("x", True)],
)
def test_jmespath_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


_KEYS = st.sampled_from(["a", "b", "data", "object", "email", "items", "amount", "0"])
# Empty containers are leaves, so every recursive step uses its children (Hypothesis
# warns, flakily, about an extend that may draw nothing from them).
_EMPTY = st.just([]) | st.just({})

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | _EMPTY,
    lambda children: (
        st.lists(children, min_size=1, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=4), children, min_size=1, max_size=4)
    ),
    max_leaves=25,
)


@given(names=st.lists(_KEYS.filter(str.isalpha), min_size=1, max_size=4), data=JSON)
def test_fast_paths_agree_with_jmespath(names: list[str], data: Any) -> None:
    text = ".".join(names)
    assert compile_expression(text).search(data) == jmespath.search(text, data)


# Paths and ``==`` / ``!=`` skip the JMESPath interpreter through closures; for every
# document they must return exactly what jmespath returns (the same object, not an equal one).
_NAMES = _KEYS | st.text(max_size=4)
_STEP = _NAMES.map(lambda name: "." + json.dumps(name)) | st.integers(-3, 3).map(lambda i: f"[{i}]")
PATHS = st.builds(
    lambda first, rest: json.dumps(first) + "".join(rest), _NAMES, st.lists(_STEP, max_size=4)
)
LITERALS = st.sampled_from(
    ["`null`", "`true`", "`false`", "`0`", "`1`", "`1.0`", "'a'", '`"a"`', "`[]`", "`{}`"]
)


@settings(max_examples=500)
@given(text=PATHS, data=JSON)
def test_fast_paths_return_exactly_what_jmespath_returns(text: str, data: Any) -> None:
    assert _fast_search(jmespath.compile(text).parsed) is not None  # the fast path is taken
    fast = compile_expression(text).search(data)
    assert fast is jmespath.search(text, data), text


@settings(max_examples=500)
@given(left=PATHS | LITERALS, op=st.sampled_from(["==", "!="]), right=PATHS | LITERALS, data=JSON)
def test_fast_equality_returns_exactly_what_jmespath_returns(
    left: str, op: str, right: str, data: Any
) -> None:
    text = f"{left} {op} {right}"
    assert _fast_search(jmespath.compile(text).parsed) is not None
    assert compile_expression(text).search(data) is jmespath.search(text, data), text


@given(data=JSON)
def test_fast_paths_read_the_example_shapes(data: Any) -> None:
    context = {"event": {"data": {"object": data}}, "headers": {"x-shopify-topic": data}}
    for text in (
        "event.data.object.customer_email",
        'headers."x-shopify-topic"',
        "event.data.object[0].email_address",
        "event.data.object[-1]",
        "event.data.object.subscription != `null`",
    ):
        assert _fast_search(jmespath.compile(text).parsed) is not None
        assert compile_expression(text).search(context) is jmespath.search(text, context), text


@settings(max_examples=300)
@given(text=PATHS, data=JSON)
def test_root_paths_return_what_jmespath_returns(text: str, data: Any) -> None:
    rooted = "$." + text
    assert _fast_search(jmespath.compile(rooted).parsed) is None  # $ is interpreted
    value = compile_expression(rooted).search(data)
    assert value is jmespath.search(rooted, data), rooted
    assert value is compile_expression(text).search(data), rooted


# Joins ($, filters, [*] projections, pipes) skip the interpreter through (value, root)
# closures; they must answer as jmespath does for every document.
_OPERAND = PATHS | PATHS.map(lambda path: "$." + path) | LITERALS | st.just("@")
JOINS = st.one_of(
    st.builds(
        lambda base, left, op, right, project, tail: (
            f"{base}[?{left} {op} {right}].{project}{tail}"
        ),
        PATHS,
        _OPERAND,
        st.sampled_from(["==", "!="]),
        _OPERAND,
        PATHS,
        st.sampled_from(["", " | [0]", " | [-1]", " | @"]),
    ),
    st.builds(lambda base, project: f"{base}[*].{project}", PATHS, PATHS),
    st.builds(lambda left, right: f"{left} | {right}", PATHS | _OPERAND, PATHS | _OPERAND),
)


@settings(max_examples=800)
@given(text=JOINS, data=JSON)
def test_joins_return_what_jmespath_returns(text: str, data: Any) -> None:
    parsed = jmespath.compile(text).parsed
    assert _fast_search(parsed) is None or "$" not in text
    assert _joined(parsed) is not None, text  # the closures are taken, not the interpreter
    fast = compile_expression(text).search(data)
    expected = jmespath.search(text, data)
    assert fast == expected, text
    assert type(fast) is type(expected), text


def test_the_clerk_primary_address_join_is_compiled() -> None:
    assert _joined(jmespath.compile(CLERK_PRIMARY).parsed) is not None


def test_other_shapes_still_go_through_jmespath() -> None:
    others = ("a[*].b", "a[]", "a[0:2]", "[0]", "@.a", "a || b", "a > `1`", "length(a)", "$.a")
    for text in (*others, "let $x = a in $x"):
        assert _fast_search(jmespath.compile(text).parsed) is None, text


# --------------------------------------------------------------------------- joins: $ and let

# Clerk's user.created: the address to mail is the one whose id is primary_email_address_id.
PRIMARY = "event.data.email_addresses[?id == $.event.data.primary_email_address_id].email_address"
CLERK_PRIMARY = PRIMARY + " | [0]"
CLERK_LET = (
    "let $primary = event.data.primary_email_address_id in "
    "event.data.email_addresses[?id == $primary].email_address | [0]"
)


def clerk(primary: str | None, *ids: str) -> dict[str, Any]:
    addresses = [{"id": i, "email_address": f"{i}@example.com"} for i in ids]
    return {"data": {"primary_email_address_id": primary, "email_addresses": addresses}}


@pytest.mark.parametrize("text", [CLERK_PRIMARY, CLERK_LET])
def test_clerk_join_mails_the_primary_address_wherever_it_is(text: str) -> None:
    email = compile_expression(text, roots=CONTEXT_ROOTS)
    assert email.search(context(clerk("b", "a", "b", "c"))) == "b@example.com"
    assert email.search(context(clerk("a", "a", "b"))) == "a@example.com"
    assert email.search(context(clerk("z", "a", "b"))) is None  # no such address
    assert email.search(context(clerk(None))) is None  # Clerk: a user without an email
    assert email.search(context({"data": {"email_addresses": "?"}})) is None
    # in a payload mapping: the primary address, not the first one
    assert mapped({"email": text}, clerk("b", "a", "b")) == {"email": "b@example.com"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", None),  # checked below: the whole context
        ("$.event.a", 1),
        ("$.topic", "t"),
        ('$.headers."x-id"', "h"),
        ("$.event.items[?n == $.event.a].n", [1]),
        ("event.items[?n > `1`] | [?n == $.event.b].n", [2]),
        ("let $a = event.a in event.items[?n == $a].n | [0]", 1),
        ("let $a = event.a, $b = event.b in [$a, $b]", [1, 2]),
        ("let $e = event in let $a = $e.a in $e.items[?n != $a].n", [2]),
        ("let $a = event.a in map(&[n, $a], event.items)", [[1, 1], [2, 1]]),
        ("sort_by(event.items, &n)[?n == $.event.b].n", [2]),
    ],
)
def test_root_and_let_compile_and_read_the_context(text: str, expected: Any) -> None:
    ctx = context({"a": 1, "b": 2, "items": [{"n": 1}, {"n": 2}]}, headers={"x-id": "h"})
    search = compile_expression(text, roots=CONTEXT_ROOTS).search
    assert search(ctx) == (ctx if text == "$" else expected)
    assert search(ctx) == jmespath.search(text, ctx)


def test_root_inside_each_is_the_elements_context() -> None:
    fields = {
        "lines": {
            "path": "event.items",
            "each": {"fields": {"n": "item.n", "first": "item.n == $.event.items[0].n"}},
        }
    }
    assert mapped(fields, {"items": [{"n": 1}, {"n": 2}]}) == {
        "lines": [{"n": 1, "first": True}, {"n": 2, "first": False}]
    }
    compile_expression("$.item.n", roots=CONTEXT_ROOTS | ITEM_ROOTS)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("data.email", "data"),  # forgot event.
        ("$.data.email", "data"),  # the root is the context, not the event
        ("event.items[?id == $.evnt.id]", "evnt"),  # $ inside a filter is still checked
        ("let $p = evnt.id in event.items[?id == $p]", "evnt"),  # and so is a binding
        ("let $p = event.id in evnt.items[?id == $p]", "evnt"),  # and the body
        ("$ | data.x", "data"),
    ],
)
def test_unknown_roots_are_still_refused_with_the_join_hint(text: str, name: str) -> None:
    with pytest.raises(ExpressionError, match=f"{name!r}, which is not in the context") as info:
        compile_expression(text, roots=CONTEXT_ROOTS)
    assert f"event.{name}" in info.value.fix
    assert "[?id == $.event.data.primary_email_address_id]" in info.value.fix


def test_let_names_are_not_roots_and_unbound_names_are_refused() -> None:
    compile_expression("let $event = event.data in $event.email", roots=CONTEXT_ROOTS)
    for text in ("$event.data.email", "let $a = event.a in $b", "let $a = `1`, $b = $a in $b"):
        with pytest.raises(ExpressionError, match="which no let binds") as info:
            compile_expression(text, roots=CONTEXT_ROOTS)
        assert "$." in info.value.fix


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("headers.x-shopify-topic", 'quote names that contain "-"'),  # would subtract
        ("event.a-b", 'quote names that contain "-"'),
        ("event.amount / `100`", "type: decimal"),
        ("event.a * event.b", "type: decimal"),
    ],
)
def test_arithmetic_is_refused(text: str, fix: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, roots=CONTEXT_ROOTS)
    assert fix in info.value.fix


def test_backtick_literals_must_be_json() -> None:
    with pytest.raises(ExpressionError, match="is not JSON") as info:
        compile_expression("event.type == `invoice.paid`")
    assert "'text'" in info.value.fix
    assert compile_expression('event.type == `"a"`').search(context({"type": "a"})) is True


def test_invalid_expressions_suggest_the_join_syntax() -> None:
    with pytest.raises(ExpressionError, match="invalid JMESPath") as info:
        compile_expression("event.data.email_addresses[?id == ]")
    assert "refer to the root with $" in info.value.fix


def test_slices_compile() -> None:
    assert compile_expression("event.a[0:2]", roots=CONTEXT_ROOTS).search(
        context({"a": [1, 2, 3]})
    ) == [1, 2]


def test_a_failed_search_with_let_leaves_nothing_behind() -> None:
    # $ and let keep state in the interpreter: each search has its own
    broken = compile_expression("let $n = event.n in length($n)")
    with pytest.raises(JMESPathError, match="invalid type"):
        broken.search(context({"n": 5}))
    assert broken.search(context({"n": [1]})) == 1
    assert compile_expression("$.event.n").search(context({"n": 2})) == 2


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(event=JSON, headers=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
def test_compiled_example_routes_never_raise(
    example_config: BridgeConfig, event: Any, headers: dict[str, str]
) -> None:
    for route in example_config.routes:
        compiled = compile_mapping(route.name, route.payload)
        before = copy.deepcopy(event)
        result = compiled(context(event, headers=headers))
        assert isinstance(result, Mapped | MappingFailure)
        if isinstance(result, MappingFailure):
            assert result.route == route.name
            assert result.message
        assert event == before  # mapping never mutates the event


STRIPE_LIKE = st.fixed_dictionaries(
    {
        "id": st.text(max_size=5),
        "type": st.text(max_size=5),
        "data": st.fixed_dictionaries({"object": JSON}),
    }
)


@settings(max_examples=300, deadline=None)
@given(event=STRIPE_LIKE | st.fixed_dictionaries({"line_items": JSON, "email": JSON}))
def test_deep_example_paths_never_raise(example_config: BridgeConfig, event: Any) -> None:
    for route in example_config.routes:
        result = compile_mapping(route.name, route.payload)(context(event))
        assert isinstance(result, Mapped | MappingFailure)


def test_ordering_a_string_against_a_number_is_null_as_the_spec_says() -> None:
    assert compile_expression("event.a > `1`").search({"event": {"a": "x"}}) is None
    assert compile_expression("event.a > `1`").search({"event": {"a": 2}}) is True
    assert compile_expression("event.a < event.b").search({"event": {"a": "a", "b": "b"}}) is True
    skus = compile_expression("event.items[?price > `5`].sku")
    items = [{"price": "n/a", "sku": "A"}, {"price": 9, "sku": "B"}, {"price": True, "sku": "C"}]
    assert skus.search({"event": {"items": items}}) == ["B"]
