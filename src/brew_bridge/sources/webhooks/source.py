"""The webhook source: a verified delivery is in the outbox before its 2xx.

:meth:`WebhookSource.receive` takes one request's source name, headers and raw body
(already read within the size limit, see :mod:`.app`) and decides the answer:

* unknown source -> 404; stopping -> 503 with ``Retry-After``;
* bad, missing, stale or future signature -> 401: counted, not stored, logged without
  the body or any secret;
* outbox above its high-water mark, or failing -> 503 with ``Retry-After``: the
  provider retries later, nothing is lost;
* verified: stored through the intake (the same route -> stage -> commit as every
  source; concurrent requests share one transaction). A body that is not a JSON object
  is stored as an ``invalid_json`` dead letter and answered 400 (the provider sees
  the mistake; the bytes are kept for a redrive). Otherwise 200.

The record's position is the provider's delivery id (Stripe's event id, ``webhook-id``,
``X-Shopify-Webhook-Id``, ``X-GitHub-Delivery``, or an ``id_header``), else the SHA-256
of the body: a redelivery is the same record, refused by the outbox as a duplicate, and
routes on webhooks key their deliveries on it by default.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from brew_bridge.config.webhooks import WebhooksConfig
from brew_bridge.errors import BridgeError
from brew_bridge.events import SourceRecord
from brew_bridge.mapping.context import decode_event
from brew_bridge.observe.logs import hide
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.webhooks.schemes import Refused, Scheme, build_scheme
from brew_bridge.typing import Clock, PushIntake

__all__ = ["SOURCE", "Answer", "WebhookSource", "webhook_record"]

SOURCE: Final = "webhook"
UNKNOWN: Final = "(unknown)"  # the metric label of a name no source has: names are not labels

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one delivery, and its outcome (the metric label)."""

    status: int
    outcome: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def webhook_record(
    name: str, scheme: Scheme, headers: Mapping[str, str], body: bytes, timestamp: float
) -> tuple[SourceRecord, dict[str, Any] | str]:
    """The record a verified delivery becomes, and its event (or why it is not JSON).

    ``headers`` have lower-case names; credentials and signatures are not kept.
    """
    event = decode_event(body)
    delivery_id = scheme.delivery_id(headers, event if isinstance(event, dict) else None)
    if delivery_id is None:
        delivery_id = "sha256:" + hashlib.sha256(body).hexdigest()
    record = SourceRecord(
        source=SOURCE,
        stream=name,
        position=delivery_id,
        key=None,
        value=body,
        headers=tuple(
            (key, value.encode("latin-1"))
            for key, value in headers.items()
            if key not in scheme.dropped_headers
        ),
        timestamp_ms=int(timestamp * 1000),
    )
    return record, event


class WebhookSource:
    """Every configured webhook source, feeding one intake."""

    def __init__(
        self,
        config: WebhooksConfig,
        intake: PushIntake,
        metrics: Metrics,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self._intake = intake
        self._metrics = metrics
        self._clock = clock
        self._schemes: dict[str, Scheme] = {}
        for name, source in config.sources.items():
            for secret in source.resolved:
                hide(secret.get_secret_value())
            self._schemes[name] = build_scheme(source)
        self.closing = False  # set when the worker stops: answer 503, the provider retries

    @property
    def unsigned(self) -> list[str]:
        """The sources that verify nothing (scheme: none)."""
        return [name for name, scheme in self._schemes.items() if scheme.name == "none"]

    def knows(self, name: str) -> bool:
        return name in self._schemes

    def label(self, name: str) -> str:
        """The ``source`` label for a request to ``name``."""
        return name if name in self._schemes else UNKNOWN

    def count(self, name: str, answer: Answer, seconds: float) -> None:
        label = self.label(name)
        self._metrics.webhook_requests.labels(label, answer.outcome).inc()
        self._metrics.webhook_request_duration.labels(label).observe(seconds)

    def unavailable(self, outcome: str, message: str) -> Answer:
        """A 503 the provider retries after ``retry_after_seconds``."""
        retry = str(self.config.retry_after_seconds)
        return Answer(503, outcome, {"error": message}, {"Retry-After": retry})

    async def receive(self, name: str, headers: Sequence[tuple[str, str]], body: bytes) -> Answer:
        """The answer to one delivery of the source ``name`` (never raises)."""
        scheme = self._schemes.get(name)
        if scheme is None:
            return Answer(404, "unknown_source", {"error": f"no webhook source {name!r}"})
        if self.closing:
            return self.unavailable("stopping", "the bridge is stopping; send again later")
        lowered = {key.lower(): value for key, value in headers}
        now = self._clock()
        try:
            verified = scheme.verify(lowered, body, now)
        except Refused as exc:
            log.warning("webhook_refused", source=name, outcome=exc.outcome, reason=exc.message)
            return Answer(401, exc.outcome, {"error": f"signature refused: {exc.message}"})
        stamp = verified.timestamp if verified.timestamp is not None else now
        record, event = webhook_record(name, scheme, lowered, body, stamp)
        delivery_id = record.position
        bound = log.bind(source=name, delivery_id=delivery_id)
        try:
            if await self._intake.backpressure():
                return self.unavailable("backpressure", "the outbox is full; send again later")
            await self._intake.store([record])
        except BridgeError as exc:
            bound.error("webhook_not_stored", error=str(exc))
            return self.unavailable("unavailable", "the outbox cannot take it; send again later")
        if isinstance(event, str):
            bound.warning("webhook_dead_lettered", reason="invalid_json", error=event)
            return Answer(
                400, "invalid_json", {"error": event, "dead_letter": True, "id": delivery_id}
            )
        bound.debug("webhook_stored")
        return Answer(200, "stored", {"stored": True, "id": delivery_id})
