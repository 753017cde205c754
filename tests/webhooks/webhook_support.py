"""Signed deliveries for the webhook tests, made by the providers' own code where it exists.

Stripe: ``stripe.WebhookSignature.generate_signature_header``; Standard Webhooks / Svix:
``svix.webhooks.Webhook.sign``; Shopify and GitHub: their documented algorithms
(GitHub's published test vector is checked in the scheme tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from stripe import WebhookSignature
from svix.webhooks import Webhook as SvixWebhook

from brew_bridge.config.webhooks import WebhookSourceConfig

STRIPE_SECRET = "whsec_stripe_test_secret_0123456789"
STRIPE_OLD_SECRET = "whsec_stripe_old_secret_9876543210"
# Standard Webhooks secrets are base64 after whsec_.
SVIX_SECRET = "whsec_" + base64.b64encode(b"svix-test-secret-0123456789abcdef").decode()
SHOPIFY_SECRET = "shpss_shopify_test_secret_0123"
GITHUB_SECRET = "github-test-secret-0123456789"


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, at: float | None = None
) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    header = WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=stamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def svix_headers(
    body: bytes,
    msg_id: str,
    secret: str = SVIX_SECRET,
    at: float | None = None,
    spelling: str = "svix",
) -> dict[str, str]:
    stamp = datetime.fromtimestamp(int(time.time() if at is None else at), tz=UTC)
    signature = SvixWebhook(secret).sign(msg_id, stamp, body.decode())
    return {
        f"{spelling}-id": msg_id,
        f"{spelling}-timestamp": str(int(stamp.timestamp())),
        f"{spelling}-signature": signature,
        "Content-Type": "application/json",
    }


def shopify_headers(
    body: bytes, webhook_id: str, topic: str, secret: str = SHOPIFY_SECRET
) -> dict[str, str]:
    # shopify.dev "Verify a webhook": base64 of the HMAC-SHA256 of the raw body.
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "Content-Type": "application/json",
    }


def github_headers(
    body: bytes, delivery: str, event: str, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    # docs.github.com "Validating webhook deliveries": sha256= and the hex HMAC of the body.
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def source_config(scheme: str, *secrets: str, **settings: Any) -> WebhookSourceConfig:
    """A source as the loader leaves it: the secrets already read."""
    refs = [{"env": f"SECRET_{i}"} for i in range(len(secrets))]
    config = WebhookSourceConfig.model_validate({"scheme": scheme, "secrets": refs, **settings})
    return config.model_copy(update={"resolved": tuple(SecretStr(s) for s in secrets)})


STRIPE_ENV = {"STRIPE_SECRET": STRIPE_SECRET, "SVIX_SECRET": SVIX_SECRET}
PROVIDER_ENV = {
    **STRIPE_ENV,
    "SHOPIFY_SECRET": SHOPIFY_SECRET,
    "GITHUB_SECRET": GITHUB_SECRET,
}
SCHEMA = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
    ],
}
# One route per provider, each matching on where its provider says the event's type is.
PROVIDER_ROUTES: list[dict[str, Any]] = [
    {
        "name": "stripe-welcome",
        "webhooks": ["stripe"],
        "match": {"type": "customer.created"},
        "trigger": "tri_welcome",
        "payload": {"email": "event.data.object.email"},
    },
    {
        "name": "clerk-welcome",
        "webhooks": ["clerk"],
        "match": {"type": "user.created"},
        "trigger": "tri_welcome",
        "payload": {
            "email": "event.data.email_addresses[?id == $.event.data.primary_email_address_id]"
            " | [0].email_address",
            "firstName": "event.data.first_name",
        },
    },
    {
        "name": "shop-welcome",
        "webhooks": ["shop"],
        "match": {"type": "customers/create"},
        "trigger": "tri_welcome",
        "payload": {"email": "event.email"},
    },
    {
        "name": "github-star",
        "webhooks": ["gh"],
        "match": {"type": "star"},
        "trigger": "tri_welcome",
        "payload": {"email": "event.sender.email"},
    },
]
PROVIDER_SOURCES: dict[str, Any] = {
    "stripe": {"scheme": "stripe", "secrets": [{"env": "STRIPE_SECRET"}]},
    "clerk": {"scheme": "svix", "secrets": [{"env": "SVIX_SECRET"}]},
    "shop": {"scheme": "shopify", "secrets": [{"env": "SHOPIFY_SECRET"}]},
    "gh": {"scheme": "github", "secrets": [{"env": "GITHUB_SECRET"}]},
}


def webhook_bridge_data(
    outbox: str,
    brew_url: str,
    api_key: str,
    *,
    sources: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    webhooks: dict[str, Any] | None = None,
    outbox_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole config (as YAML would hold it) with webhook sources and their routes."""
    return {
        "outbox": {"path": outbox, "synchronous": "NORMAL", **(outbox_settings or {})},
        "brew": {
            "base_url": brew_url,
            "timeout_seconds": 2.0,
            "connect_timeout_seconds": 1.0,
            "retry": {"base_delay_seconds": 0.05, "max_delay_seconds": 0.5},
        },
        "dispatcher": {"idle_poll_seconds": 0.05},
        "poller": {"interval_seconds": 0.25},
        "server": {"host": "127.0.0.1", "port": 0},
        "webhooks": {"sources": sources or PROVIDER_SOURCES, **(webhooks or {})},
        "triggers": {"tri_welcome": {"payload_schema": SCHEMA}},
        "routes": routes or PROVIDER_ROUTES,
    }
