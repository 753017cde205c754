"""The verifiers alone: pure functions, signatures made by the providers' own code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from stripe import WebhookSignature
from webhook_support import (
    GITHUB_SECRET,
    SHOPIFY_SECRET,
    STRIPE_OLD_SECRET,
    STRIPE_SECRET,
    SVIX_SECRET,
    body_of,
    github_headers,
    shopify_headers,
    source_config,
    stripe_headers,
    svix_headers,
)

from brew_bridge.sources.webhooks import Refused, Verified, build_scheme

BODY = body_of({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"amount_paid": 1}}})
NOW = 1_760_000_000.0


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def refusal(verify: object, headers: dict[str, str], body: bytes, now: float) -> str:
    with pytest.raises(Refused) as caught:
        verify(lowered(headers), body, now)  # type: ignore[operator]
    return caught.value.outcome


# -- Stripe -----------------------------------------------------------------------------


def test_stripe_accepts_its_own_signature_and_stripe_accepts_what_we_accept() -> None:
    scheme = build_scheme(source_config("stripe", STRIPE_SECRET))
    headers = stripe_headers(BODY, at=NOW)
    assert scheme.verify(lowered(headers), BODY, NOW) == Verified(NOW)
    # The official verifier agrees with the header we accepted (at its own clock).
    fresh = stripe_headers(BODY)
    assert WebhookSignature.verify_header(BODY.decode(), fresh["Stripe-Signature"], STRIPE_SECRET)
    assert scheme.delivery_id({}, {"id": "evt_1"}) == "evt_1"


def test_stripe_refuses_a_changed_body_a_wrong_secret_and_a_missing_header() -> None:
    scheme = build_scheme(source_config("stripe", STRIPE_SECRET))
    headers = stripe_headers(BODY, at=NOW)
    assert refusal(scheme.verify, headers, BODY + b" ", NOW) == "bad_signature"
    other = stripe_headers(BODY, secret="whsec_someone_else", at=NOW)
    assert refusal(scheme.verify, other, BODY, NOW) == "bad_signature"
    assert refusal(scheme.verify, {}, BODY, NOW) == "missing_signature"
    assert refusal(scheme.verify, {"Stripe-Signature": "t=1"}, BODY, NOW) == "bad_signature"


def test_stripe_accepts_any_of_several_v1_values_and_any_rotated_secret() -> None:
    rotated = build_scheme(source_config("stripe", STRIPE_OLD_SECRET, STRIPE_SECRET))
    for secret in (STRIPE_OLD_SECRET, STRIPE_SECRET):
        assert rotated.verify(lowered(stripe_headers(BODY, secret, NOW)), BODY, NOW)
    # Stripe sends one v1 per active secret while the endpoint's secret is rolled.
    new = stripe_headers(BODY, STRIPE_SECRET, NOW)["Stripe-Signature"]
    old = stripe_headers(BODY, STRIPE_OLD_SECRET, NOW)["Stripe-Signature"].split(",")[1]
    only_new = build_scheme(source_config("stripe", STRIPE_SECRET))
    both = {"stripe-signature": f"{new.split(',')[0]},{old},{new.split(',')[1]}"}
    assert only_new.verify(both, BODY, NOW) == Verified(NOW)


@pytest.mark.parametrize(
    ("offset", "outcome"),
    [(-300, None), (-301, "stale_timestamp"), (300, None), (301, "future_timestamp")],
)
def test_stripe_tolerance_at_both_edges(offset: int, outcome: str | None) -> None:
    scheme = build_scheme(source_config("stripe", STRIPE_SECRET))
    headers = stripe_headers(BODY, at=NOW + offset)
    if outcome is None:
        assert scheme.verify(lowered(headers), BODY, NOW) == Verified(NOW + offset)
    else:
        assert refusal(scheme.verify, headers, BODY, NOW) == outcome


def test_stripe_tolerance_is_configurable() -> None:
    scheme = build_scheme(source_config("stripe", STRIPE_SECRET, tolerance_seconds=10))
    assert refusal(scheme.verify, stripe_headers(BODY, at=NOW - 11), BODY, NOW) == "stale_timestamp"
    assert scheme.verify(lowered(stripe_headers(BODY, at=NOW - 10)), BODY, NOW)


# -- Standard Webhooks / Svix -------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["svix", "webhook"])
def test_standard_webhooks_accepts_svix_signatures_in_both_spellings(spelling: str) -> None:
    scheme = build_scheme(source_config("svix", SVIX_SECRET))
    headers = svix_headers(BODY, "msg_1", spelling=spelling)
    verified = scheme.verify(lowered(headers), BODY, time.time())
    assert verified.timestamp == float(headers[f"{spelling}-timestamp"])
    assert scheme.delivery_id(lowered(headers), None) == "msg_1"


def test_standard_webhooks_refusals() -> None:
    scheme = build_scheme(source_config("standard", SVIX_SECRET))
    now = time.time()
    headers = svix_headers(BODY, "msg_1")
    assert refusal(scheme.verify, headers, BODY + b"x", now) == "bad_signature"
    other = "whsec_" + base64.b64encode(b"another-secret-entirely").decode()
    assert refusal(scheme.verify, svix_headers(BODY, "msg_1", other), BODY, now) == "bad_signature"
    assert refusal(scheme.verify, {"svix-id": "msg_1"}, BODY, now) == "missing_signature"
    garbled = {**headers, "svix-signature": "not-a-signature"}
    assert refusal(scheme.verify, garbled, BODY, now) == "bad_signature"
    # The library's own 5 minutes, at its own clock, either way.
    stale = svix_headers(BODY, "msg_1", at=now - 310)
    assert refusal(scheme.verify, stale, BODY, now) == "stale_timestamp"
    future = svix_headers(BODY, "msg_1", at=now + 310)
    assert refusal(scheme.verify, future, BODY, now) == "future_timestamp"
    assert scheme.verify(lowered(svix_headers(BODY, "msg_1", at=now - 290)), BODY, now)


def test_standard_webhooks_rotation_accepts_old_and_new() -> None:
    old = "whsec_" + base64.b64encode(b"the-old-secret-0123456789").decode()
    scheme = build_scheme(source_config("svix", old, SVIX_SECRET))
    now = time.time()
    for secret in (old, SVIX_SECRET):
        assert scheme.verify(lowered(svix_headers(BODY, "msg_2", secret)), BODY, now)


# -- Shopify, GitHub, generic HMAC, none ---------------------------------------------------


def test_shopify_base64_hmac_of_the_body() -> None:
    scheme = build_scheme(source_config("shopify", SHOPIFY_SECRET))
    headers = shopify_headers(BODY, "wh_1", "orders/create")
    assert scheme.verify(lowered(headers), BODY, NOW) == Verified()
    assert scheme.delivery_id(lowered(headers), None) == "wh_1"
    assert refusal(scheme.verify, headers, BODY[:-1], NOW) == "bad_signature"
    assert "x-shopify-hmac-sha256" in scheme.dropped_headers


def test_github_published_test_vector() -> None:
    # docs.github.com, "Validating webhook deliveries": this secret, payload and signature.
    secret, payload = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    scheme = build_scheme(source_config("github", secret))
    assert scheme.verify({"x-hub-signature-256": expected}, payload, NOW) == Verified()
    assert github_headers(payload, "d1", "ping", secret)["X-Hub-Signature-256"] == expected
    wrong = {"x-hub-signature-256": expected.replace("sha256=", "sha1=")}
    assert refusal(scheme.verify, wrong, payload, NOW) == "bad_signature"


def test_github_delivery_id_and_refusals() -> None:
    scheme = build_scheme(source_config("github", GITHUB_SECRET))
    headers = github_headers(BODY, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "push")
    assert scheme.verify(lowered(headers), BODY, NOW) == Verified()
    assert scheme.delivery_id(lowered(headers), None) == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert refusal(scheme.verify, {}, BODY, NOW) == "missing_signature"


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic_hmac_with_a_timestamp(encoding: str) -> None:
    secret = "generic-secret-0123456789"
    scheme = build_scheme(
        source_config(
            "hmac",
            secret,
            header="X-Signature",
            encoding=encoding,
            prefix="v1=",
            timestamp_header="X-Timestamp",
            tolerance_seconds=60,
            id_header="X-Request-Id",
        )
    )
    stamp = str(int(NOW))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    headers = {"X-Signature": f"v1={text}", "X-Timestamp": stamp, "X-Request-Id": "r1"}
    assert scheme.verify(lowered(headers), BODY, NOW) == Verified(NOW)
    assert scheme.delivery_id(lowered(headers), None) == "r1"
    assert refusal(scheme.verify, headers, BODY, NOW + 61) == "stale_timestamp"
    assert refusal(scheme.verify, {**headers, "X-Timestamp": str(int(NOW) + 1)}, BODY, NOW) == (
        "bad_signature"
    )
    assert refusal(scheme.verify, {"X-Signature": headers["X-Signature"]}, BODY, NOW) == (
        "missing_signature"
    )
    assert "x-signature" in scheme.dropped_headers


def test_none_verifies_nothing_and_ids_come_from_the_id_header() -> None:
    scheme = build_scheme(source_config("none", id_header="X-Event-Id"))
    assert scheme.verify({}, b"anything", NOW) == Verified()
    assert scheme.delivery_id({"x-event-id": "e1"}, None) == "e1"
    assert scheme.delivery_id({}, None) is None
