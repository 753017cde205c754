"""payload_schema: Brew's payload validator, as the simulator and routing both use it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from payload_schema_reference import reference_check_payload
from sim_support import SCHEMA, fixture

from brew_bridge.wire.payload_schema import (
    EMAIL_RULE,
    FieldIssue,
    check_payload,
    compile_schema,
    schema_problems,
)


def test_fixture_invalid_type_is_reproduced_exactly() -> None:
    """The 9.3.0 SDK's regression body: a number where a string is declared."""
    body = fixture("github-tests/fire_400_payload_mismatch_INVALID_PAYLOAD.json")
    schema = body["details"]["payloadSchema"]
    check = check_payload({"email": "a@b.co", "code": 5}, schema)
    assert not check.ok
    assert [e.to_wire() for e in check.errors] == body["details"]["errors"]
    assert check.warnings == ()


def test_fixture_unexpected_key_warning_is_reproduced_exactly() -> None:
    expected = fixture("sdk-9.3.0-dts/contract_validate_200.json")["warnings"]
    check = check_payload({"email": "jane@example.com", "coupon": "SPRING"}, SCHEMA)
    assert check.ok
    assert [w.to_wire() for w in check.warnings] == expected


def test_valid_payload_gets_fallbacks_and_keeps_undeclared_keys() -> None:
    check = check_payload({"email": "a@b.co", "extra": 1}, SCHEMA)
    assert check.ok
    assert check.resolved == {"email": "a@b.co", "extra": 1, "plan": "free"}


def test_missing_required_and_null_required() -> None:
    for payload in ({}, {"email": None}):
        check = check_payload(payload, SCHEMA)
        assert [(e.code, e.field) for e in check.errors] == [("missing_required", "email")]
        assert check.errors[0].message == 'Required field "email" is missing'


def test_nested_paths_are_dotted_and_indexed() -> None:
    schema = {
        "type": "object",
        "fields": [
            {"key": "email", "type": "string", "required": True},
            {
                "key": "order",
                "type": "object",
                "required": True,
                "children": [
                    {"key": "total", "type": "float", "required": True},
                    {
                        "key": "lineItems",
                        "type": "array",
                        "required": False,
                        "children": [{"key": "sku", "type": "string", "required": True}],
                    },
                ],
            },
            {"key": "tags", "type": "array", "required": False, "itemType": "string"},
        ],
    }
    payload = {
        "email": "a@b.co",
        "order": {"total": "12", "lineItems": [{"sku": "A"}, {"qty": 1}, 7]},
        "tags": ["x", 2],
    }
    check = check_payload(payload, schema)
    assert [(e.code, e.field, e.expected_type, e.actual_type) for e in check.errors] == [
        ("invalid_type", "order.total", "float", "string"),
        ("missing_required", "order.lineItems[1].sku", "string", None),
        ("invalid_type", "order.lineItems[2]", "object", "number"),
        ("invalid_type", "tags[1]", "string", "number"),
    ]
    assert [(w.code, w.field) for w in check.warnings] == [
        ("unexpected_key", "order.lineItems[1].qty")
    ]


def test_types_follow_json_not_python() -> None:
    schema = {
        "type": "object",
        "fields": [
            {"key": "n", "type": "int", "required": True},
            {"key": "b", "type": "boolean", "required": True},
            {"key": "f", "type": "float", "required": True},
        ],
    }
    assert check_payload({"n": 3, "b": False, "f": 2}, schema).ok
    assert check_payload({"n": 3.0, "b": True, "f": 2.5}, schema).ok  # 3.0 is an integer in JSON
    bad = check_payload({"n": True, "b": 1, "f": False}, schema)
    assert [(e.field, e.actual_type) for e in bad.errors] == [
        ("n", "boolean"),
        ("b", "number"),
        ("f", "boolean"),
    ]
    assert check_payload({"n": 3.5, "b": True, "f": 1}, schema).errors[0].message == (
        'Field "n" must be an integer'
    )


def test_enum_values_are_checked() -> None:
    schema = {
        "type": "object",
        "fields": [
            {"key": "plan", "type": "enum", "required": True, "enumValues": ["free", "pro"]}
        ],
    }
    assert check_payload({"plan": "pro"}, schema).ok
    issue = check_payload({"plan": "gold"}, schema).errors[0]
    assert issue.message == 'Field "plan" must be one of "free", "pro"'


def test_a_payload_that_is_not_an_object() -> None:
    check = check_payload(["a"], SCHEMA)
    assert check.errors == (
        FieldIssue(
            "payload_not_object", "", "The payload must be a JSON object", "object", "array"
        ),
    )
    assert check.resolved == {}


def test_to_wire_omits_absent_types() -> None:
    issue = FieldIssue("unexpected_key", "x", "m")
    assert issue.to_wire() == {"code": "unexpected_key", "field": "x", "message": "m"}


def test_schema_problems_accepts_the_contract_examples() -> None:
    assert schema_problems(SCHEMA) == []
    create = fixture("sdk-9.3.0-dts/triggers_create_request.json")
    assert schema_problems(create["payloadSchema"]) == []


def test_schema_problems_names_each_problem() -> None:
    schema = {
        "type": "array",
        "fields": [
            {"key": "email", "type": "string", "required": False},
            {"key": "email", "type": "text", "required": "yes"},
            {"key": "n", "type": "int", "required": True, "itemType": "string"},
            {"key": "o", "type": "object", "required": True, "children": "none"},
            "junk",
        ],
    }
    problems = schema_problems(schema)
    assert problems == [
        'payloadSchema.type must be "object"',
        'payloadSchema.fields[1].key "email" is declared twice at this level',
        "payloadSchema.fields[1].type must be one of "
        "array|boolean|date|enum|float|int|object|string|unknown, not 'text'",
        "payloadSchema.fields[1].required must be true or false",
        "payloadSchema.fields[n].itemType is only allowed on an array field",
        "payloadSchema.fields[o].children must be a list of fields",
        "payloadSchema.fields[4] must be an object with key, type and required",
        EMAIL_RULE,
    ]
    assert schema_problems("nope") == [
        "payloadSchema must be an object: {type: object, fields: [...]}"
    ]


def test_schema_without_email_names_the_rule() -> None:
    schema = {"type": "object", "fields": [{"key": "name", "type": "string", "required": True}]}
    assert schema_problems(schema) == [EMAIL_RULE]


# Empty containers are leaves, so every recursive step uses its children (Hypothesis
# warns, flakily, about an extend that may draw nothing from them).
_EMPTY = st.just([]) | st.just({})

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | _EMPTY,
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


@given(payload=json_values, schema=json_values)
def test_check_payload_never_raises(payload: Any, schema: Any) -> None:
    """Routing calls this on arbitrary mapped JSON; it must answer, never raise."""
    check = check_payload(payload, schema if isinstance(schema, dict) else SCHEMA)
    assert check.ok == (not check.errors)
    assert isinstance(schema_problems(schema), list)


@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_check_payload_is_deterministic(payload: dict[str, Any]) -> None:
    assert check_payload(payload, SCHEMA) == check_payload(payload, SCHEMA)


# --------------------------------------------------------------------------- compiled check
# check_payload compiles the schema into closures (routing compiles once per trigger).
# The first implementation walked the schema mapping per payload; it is kept as the oracle
# in payload_schema_reference.py, and the compiled check must agree with it exactly.

_FIELD_KEYS = st.sampled_from(["email", "plan", "n", "order", "items", "tags"])
_TYPES = st.sampled_from(
    ["string", "int", "float", "boolean", "date", "enum", "object", "array", "unknown", "text"]
)


def _specs(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    spec = st.fixed_dictionaries(
        {"key": _FIELD_KEYS, "type": _TYPES | json_values, "required": st.booleans()},
        optional={
            "fallbackValue": json_values,
            "children": children,
            "itemType": _TYPES,
            "enumValues": st.lists(st.sampled_from(["free", "pro", 1]), max_size=3) | json_values,
        },
    )
    return st.lists(spec | json_values, max_size=4)  # junk entries are skipped, not fatal


field_lists = st.recursive(st.just([]) | json_values, _specs, max_leaves=8)
schemas = st.fixed_dictionaries({"type": st.just("object"), "fields": field_lists}) | json_values
payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(["pro", "a@b.co"])
    | _EMPTY,
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(_FIELD_KEYS | st.text(max_size=3), children, min_size=1)
    ),
    max_leaves=16,
)


def _same(check: Any, expected: Any) -> None:
    assert check.errors == expected.errors
    assert check.warnings == expected.warnings
    assert repr(check.resolved) == repr(expected.resolved)  # repr: 1 vs 1.0 vs True differ


@given(payload=payloads, schema=schemas)
def test_compiled_check_agrees_with_the_interpreter(payload: Any, schema: Any) -> None:
    schema = schema if isinstance(schema, dict) else SCHEMA
    _same(check_payload(payload, schema), reference_check_payload(payload, schema))


@given(payloads=st.lists(payloads, max_size=4), schema=schemas)
def test_a_compiled_schema_is_reusable(payloads: list[Any], schema: Any) -> None:
    """Routing checks every event with one compiled schema: no state leaks between calls."""
    schema = schema if isinstance(schema, dict) else SCHEMA
    compiled = compile_schema(schema)
    for payload in payloads:
        _same(compiled(payload), reference_check_payload(payload, schema))


def test_the_resolved_payload_shares_no_level_with_the_input() -> None:
    payload = {"email": "a@b.co", "order": {"total": 1.0, "lineItems": [{"sku": "A"}]}}
    schema = {
        "type": "object",
        "fields": [
            {"key": "email", "type": "string", "required": True},
            {
                "key": "order",
                "type": "object",
                "required": True,
                "children": [
                    {"key": "total", "type": "float", "required": True},
                    {
                        "key": "currency",
                        "type": "string",
                        "required": False,
                        "fallbackValue": "EUR",
                    },
                    {
                        "key": "lineItems",
                        "type": "array",
                        "required": True,
                        "children": [{"key": "sku", "type": "string", "required": True}],
                    },
                ],
            },
        ],
    }
    check = compile_schema(schema)(payload)
    assert check.resolved["order"]["currency"] == "EUR"
    assert "currency" not in payload["order"]  # fallbacks go into copies, never the input
    assert check.resolved["order"]["lineItems"] is not payload["order"]["lineItems"]


def test_a_deep_schema_compiles_only_as_deep_as_the_payload() -> None:
    fields: list[Any] = [{"key": "email", "type": "string", "required": True}]
    for _ in range(5000):  # far deeper than the stack: compiling it eagerly would overflow
        fields = [{"key": "o", "type": "object", "required": False, "children": fields}]
    check = check_payload({"o": {"o": 1}}, {"type": "object", "fields": fields})
    assert [(e.code, e.field) for e in check.errors] == [("invalid_type", "o.o")]
