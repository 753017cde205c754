"""The webhook source: signed provider deliveries (Stripe, Standard Webhooks / Svix,
Shopify, GitHub, a generic HMAC) over ``POST /webhooks/{source}``, into the same intake
as every other source."""

from brew_bridge.sources.webhooks.app import webhook_routes
from brew_bridge.sources.webhooks.saved import SavedDelivery, parse_saved_delivery
from brew_bridge.sources.webhooks.schemes import Refused, Scheme, Verified, build_scheme
from brew_bridge.sources.webhooks.source import SOURCE, Answer, WebhookSource, webhook_record

__all__ = [
    "SOURCE",
    "Answer",
    "Refused",
    "SavedDelivery",
    "Scheme",
    "Verified",
    "WebhookSource",
    "build_scheme",
    "parse_saved_delivery",
    "webhook_record",
    "webhook_routes",
]
