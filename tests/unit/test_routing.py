"""route_record: every ingest reason code, fan-out, matching, and "never raises"."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from brew_bridge.config import BridgeConfig, compiled_routes, config_from_mapping
from brew_bridge.events import Reason, Routed, SourceRecord
from brew_bridge.mapping.context import decode_event
from brew_bridge.mapping.routing import CompiledRoutes, route_record

CONFIG = yaml.safe_load(
    """
kafka: {max_record_bytes: 2048}
triggers:
  tri_receipt:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
        - {key: amount, type: string, required: true}
        - {key: currency, type: string, required: false, fallbackValue: USD}
  tri_crm:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
        - {key: customerId, type: string, required: true}
  tri_order:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
        - {key: orderNumber, type: string, required: true}
  tri_big_spender:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
routes:
  - name: receipt
    topics: [payments]
    match: {type: invoice.paid}
    trigger: tri_receipt
    payload:
      email: event.data.object.customer_email
      amount: {path: event.data.object.amount_paid, type: decimal, exponent: 2}
      currency: event.data.object.currency
  - name: crm
    topics: [payments]
    match: {type: [invoice.paid, invoice.updated]}
    trigger: tri_crm
    payload:
      email: event.data.object.customer_email
      customerId: event.data.object.customer
  - name: big_spender
    topics: [payments]
    match:
      type: invoice.paid
      filter: event.data.object.amount_paid > `100000`
    trigger: tri_big_spender
    payload:
      email: event.data.object.customer_email
  - name: order
    topics: [orders, orders-eu]
    match:
      headers: {X-Shopify-Topic: orders/create}
    trigger: tri_order
    payload:
      email: event.email
      orderNumber: event.name
"""
)


def build(**overrides: Any) -> CompiledRoutes:
    data = {**CONFIG, **overrides}
    return compiled_routes(config_from_mapping(data, env={}))


ROUTES = build()


def record(
    value: bytes | dict[str, Any] | list[Any],
    topic: str = "payments",
    headers: tuple[tuple[str, bytes], ...] = (),
    offset: int = 11,
) -> SourceRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SourceRecord("kafka", topic, f"1:{offset}", b"cus_1", raw, headers)


def invoice(amount: int = 2900, email: Any = "ada@example.com", **extra: Any) -> dict[str, Any]:
    obj = {"customer_email": email, "amount_paid": amount, "customer": "cus_1", **extra}
    return {"id": "evt_1", "type": "invoice.paid", "data": {"object": obj}}


def reasons(routed: Routed) -> list[tuple[str, str | None]]:
    return [(d.reason.value, d.route) for d in routed.dead_letters]


# --------------------------------------------------------------------------- deliveries


def test_fan_out_every_matching_route_delivers_with_its_own_key() -> None:
    routed = route_record(record(invoice()), ROUTES)
    assert not routed.dead_letters
    by_route = {d.route: d for d in routed.deliveries}
    assert set(by_route) == {"receipt", "crm"}  # big_spender's filter is false
    assert by_route["receipt"].idempotency_key == "receipt:evt_1"
    assert by_route["crm"].idempotency_key == "crm:evt_1"
    assert by_route["receipt"].action == "tri_receipt"
    assert by_route["crm"].payload == {"email": "ada@example.com", "customerId": "cus_1"}
    assert {d.event_id for d in routed.deliveries} == {"evt_1"}


def test_queued_payload_is_the_resolved_one() -> None:
    (receipt, _crm) = route_record(record(invoice()), ROUTES).deliveries
    # currency was missing: the trigger's fallbackValue is filled in before queueing
    assert receipt.payload == {"email": "ada@example.com", "amount": "29.00", "currency": "USD"}


def test_filter_takes_the_event_when_truthy() -> None:
    routed = route_record(record(invoice(amount=250000)), ROUTES)
    assert {d.route for d in routed.deliveries} == {"receipt", "crm", "big_spender"}


def test_type_list() -> None:
    updated = {**invoice(), "type": "invoice.updated"}
    routed = route_record(record(updated), ROUTES)
    assert [d.route for d in routed.deliveries] == ["crm"]


def test_header_match_is_case_insensitive_on_names_exact_on_values() -> None:
    order = {"id": 5001, "email": "k@example.com", "name": "#1042"}
    routed = route_record(record(order, "orders", (("x-shopify-topic", b"orders/create"),)), ROUTES)
    assert [d.route for d in routed.deliveries] == ["order"]
    assert routed.deliveries[0].idempotency_key == "order:5001"
    other = route_record(record(order, "orders", (("X-Shopify-Topic", b"orders/updated"),)), ROUTES)
    assert reasons(other) == [("no_route", None)]
    missing = route_record(record(order, "orders"), ROUTES)
    assert reasons(missing) == [("no_route", None)]


def test_a_route_reads_all_its_topics() -> None:
    order = {"id": 5001, "email": "k@example.com", "name": "#1042"}
    headers = (("x-shopify-topic", b"orders/create"),)
    routed = route_record(record(order, "orders-eu", headers), ROUTES)
    assert [d.route for d in routed.deliveries] == ["order"]
    assert ROUTES.streams_of("kafka") == frozenset({"payments", "orders", "orders-eu"})


def test_ordering_key_default_is_the_email() -> None:
    routed = route_record(record(invoice()), ROUTES)
    assert {d.ordering_key for d in routed.deliveries} == {"ada@example.com"}


def test_ordering_key_off_or_custom() -> None:
    off = build(dispatcher={"ordering_key": None})
    assert {d.ordering_key for d in route_record(record(invoice()), off).deliveries} == {None}
    custom = build(dispatcher={"ordering_key": "customerId"})
    keys = {d.route: d.ordering_key for d in route_record(record(invoice()), custom).deliveries}
    assert keys == {"crm": "cus_1", "receipt": None}  # missing in the payload: no ordering


def test_events_without_an_id_get_coordinate_keys() -> None:
    event = invoice()
    del event["id"]
    routed = route_record(record(event, offset=99), ROUTES)
    assert {d.idempotency_key for d in routed.deliveries} == {
        "receipt:payments:1:99",
        "crm:payments:1:99",
    }
    assert {d.event_id for d in routed.deliveries} == {None}


# --------------------------------------------------------------------------- reasons


def test_too_large() -> None:
    big = invoice(note="x" * 3000)
    routed = route_record(record(big), ROUTES)
    assert not routed.deliveries
    (dead,) = routed.dead_letters
    assert (dead.reason, dead.stage, dead.route) == (Reason.TOO_LARGE, "ingest", None)
    assert "over kafka.max_record_bytes (2048)" in dead.message
    assert dead.details is not None
    assert dead.details["limit"] == 2048


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b'{"id": "evt_1", "type": ', "value is not JSON"),
        (b"", "value is not JSON"),
        (b"[1, 2]", "value is a JSON array, not an object"),
        (b'"text"', "value is a JSON str, not an object"),
        (b"null", "value is a JSON null, not an object"),
        ('{"name": "Zoë"}'.encode("latin-1"), "not UTF-8"),
        (b'{"amount": NaN}', "NaN is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_invalid_json(value: bytes, message: str) -> None:
    routes = build(kafka={"max_record_bytes": 1_000_000})
    routed = route_record(record(value), routes)
    (dead,) = routed.dead_letters
    assert dead.reason is Reason.INVALID_JSON
    assert message in dead.message
    assert not routed.deliveries


def test_no_route_dead_letter_says_why() -> None:
    event = {"id": "evt_9", "type": "customer.subscription.deleted", "data": {}}
    routed = route_record(record(event), ROUTES)
    (dead,) = routed.dead_letters
    assert dead.reason is Reason.NO_ROUTE
    assert dead.message == (
        "no route on topic 'payments' matches this event (type 'customer.subscription.deleted')"
    )
    assert dead.details == {
        "topic": "payments",
        "type": "customer.subscription.deleted",
        "routes": ["receipt", "crm", "big_spender"],
    }
    assert not routed.dropped


def test_no_route_for_an_unread_topic() -> None:
    routed = route_record(record(invoice(), topic="refunds"), ROUTES)
    (dead,) = routed.dead_letters
    assert dead.message == "no route reads topic 'refunds'"


def test_no_route_drop_mode() -> None:
    routes = build(no_route="drop")
    routed = route_record(record({"type": "customer.created"}), routes)
    assert routed.dropped
    assert not routed.dead_letters
    assert not routed.deliveries
    # drop only applies when nothing matched: other reasons are still dead letters
    assert reasons(route_record(record(b"nope"), routes)) == [("invalid_json", None)]


def test_mapping_error_names_route_field_and_expression() -> None:
    routed = route_record(record(invoice(amount="lots")), ROUTES)
    assert [d.route for d in routed.deliveries] == ["crm"]  # the other route still delivers
    (dead,) = routed.dead_letters
    assert (dead.reason, dead.route) == (Reason.MAPPING_ERROR, "receipt")
    assert dead.message == (
        "route 'receipt': field 'amount' (expression 'event.data.object.amount_paid'): "
        'cannot convert string "lots" to decimal'
    )
    assert dead.details == {"field": "amount", "expression": "event.data.object.amount_paid"}
    assert dead.idempotency_key == "receipt:evt_1"  # kept, so a redrive fires with it


def test_payload_invalid_names_the_field() -> None:
    routed = route_record(record(invoice(email=None)), ROUTES)
    assert not routed.deliveries
    assert reasons(routed) == [("payload_invalid", "receipt"), ("payload_invalid", "crm")]
    dead = routed.dead_letters[0]
    assert 'Required field "email" is missing' in dead.message
    assert dead.details is not None
    assert dead.details["trigger"] == "tri_receipt"
    assert dead.details["errors"] == [
        {
            "code": "missing_required",
            "field": "email",
            "message": 'Required field "email" is missing',
            "expectedType": "string",
        }
    ]


def test_payload_invalid_for_a_wrong_type() -> None:
    routed = route_record(record(invoice(email=42)), ROUTES)
    dead = routed.dead_letters[0]
    assert dead.reason is Reason.PAYLOAD_INVALID
    assert dead.details is not None
    assert dead.details["errors"][0]["field"] == "email"
    assert dead.details["errors"][0]["code"] == "invalid_type"


def test_failing_match_expression_is_a_mapping_error() -> None:
    data = dict(CONFIG)
    data["routes"] = [
        {**CONFIG["routes"][2], "match": {"filter": "length(event.data.object.amount_paid) > `1`"}}
    ]
    routes = compiled_routes(config_from_mapping(data, env={}))
    routed = route_record(record(invoice()), routes)
    (dead,) = routed.dead_letters
    assert (dead.reason, dead.route) == (Reason.MAPPING_ERROR, "big_spender")
    assert dead.details == {
        "field": "(match)",
        "expression": "length(event.data.object.amount_paid) > `1`",
    }


def test_key_template_failure_is_a_mapping_error() -> None:
    data = dict(CONFIG)
    data["routes"] = [{**CONFIG["routes"][1], "idempotency_key": "{route}:{event.data.object.id}"}]
    routes = compiled_routes(config_from_mapping(data, env={}))
    (dead,) = route_record(record(invoice()), routes).dead_letters
    assert (dead.reason, dead.route) == (Reason.MAPPING_ERROR, "crm")
    assert "{event.data.object.id} is missing" in dead.message


def test_any_topic_tries_every_route() -> None:
    routed = route_record(record(invoice(), topic=""), ROUTES, any_topic=True)
    assert {d.route for d in routed.deliveries} == {"receipt", "crm"}


def test_routes_compile_from_the_example(example_config: BridgeConfig) -> None:
    routes = compiled_routes(example_config)
    assert [r.name for r in routes.by_stream[("kafka", "payments")]] == [
        "receipt_invoice",
        "crm_invoice_paid",
        "receipt_payment_intent",
        "dunning",
    ]
    assert routes.no_route == "dead_letter"


# --------------------------------------------------------------------------- properties

# Empty containers are leaves, so every recursive step uses its children (Hypothesis
# warns, flakily, about an extend that may draw nothing from them).
_EMPTY = st.just([]) | st.just({})

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | _EMPTY,
    lambda children: (
        st.lists(children, min_size=1, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "type", "data", "object", "email"]), children, min_size=1
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_route_record_never_raises(example_config: BridgeConfig, value: bytes) -> None:
    routes = compiled_routes(example_config)
    for topic in ("payments", "orders", "signups", "other"):
        routed = route_record(
            record(value, topic, (("x-shopify-topic", b"orders/create"),)), routes
        )
        assert routed.deliveries or routed.dead_letters or routed.dropped


def _reference_decode(value: bytes) -> Any:
    """What decode_event must agree with: json.loads as first called (decoder per call)."""

    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"value is not UTF-8 text (bad byte at offset {exc.start})"
    try:
        event = json.loads(text, parse_constant=reject)
    except json.JSONDecodeError as exc:
        return f"value is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return f"value is not usable JSON: {exc}"
    return event if isinstance(event, dict) else "not an object"


@settings(max_examples=500)
@given(
    value=st.binary(max_size=60)
    | JSON.map(lambda v: json.dumps(v).encode())
    | JSON.map(lambda v: b"\xef\xbb\xbf" + json.dumps(v).encode())
    | st.sampled_from([b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": "\\ud800"}'])
)
def test_decoding_is_exactly_json_loads(value: bytes) -> None:
    """decode_event keeps one decoder; results and messages are json.loads's."""
    decoded = decode_event(value)
    expected = _reference_decode(value)
    if isinstance(decoded, str) and expected == "not an object":
        assert decoded.startswith("value is a JSON ")
    else:
        assert repr(decoded) == repr(expected)
