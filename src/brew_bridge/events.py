"""The plain data that flows between sources, routing, the outbox and delivery.

Frozen dataclasses, no behaviour: sources build :class:`SourceRecord`, routing turns
each into a :class:`Routed` (deliveries to queue, dead letters to store), the outbox
stores both in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "DeadLetterStage",
    "NewDeadLetter",
    "NewDelivery",
    "Reason",
    "Routed",
    "SourceRecord",
]

DeadLetterStage = Literal["ingest", "fire", "run"]


class Reason(StrEnum):
    """Every reason code a dead letter can carry. Each one is tested."""

    # ingest: the event never reached the outbox as a delivery
    INVALID_JSON = "invalid_json"
    NO_ROUTE = "no_route"
    MAPPING_ERROR = "mapping_error"
    PAYLOAD_INVALID = "payload_invalid"
    TOO_LARGE = "too_large"
    # fire: Brew refused the fire for good
    FIRE_REJECTED = "fire_rejected"
    NO_PUBLISHED_AUTOMATION = "no_published_automation"
    RETRIES_EXHAUSTED = "retries_exhausted"
    # run: the run ended badly
    RUN_FAILED = "run_failed"
    RUN_CANCELED = "run_canceled"
    RUN_TIMED_OUT = "run_timed_out"


@dataclass(frozen=True)
class SourceRecord:
    """One record as a source delivered it, kept byte for byte so it can be redriven."""

    source: str  # "kafka" (the webhook source comes later)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @property
    def coordinates(self) -> str:
        """``topic:partition:offset``: unique per record, but not stable across re-publishing."""
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class NewDelivery:
    """A mapped, validated payload ready to be fired once."""

    route: str
    trigger_event_id: str
    idempotency_key: str
    payload: dict[str, Any]
    ordering_key: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class NewDeadLetter:
    """Something that could not be delivered, with what is needed to understand and redrive it."""

    stage: DeadLetterStage
    reason: Reason
    message: str
    route: str | None = None
    idempotency_key: str | None = None
    code: str | None = None  # Brew's error code, for fire/run dead letters
    details: dict[str, Any] | None = None  # error envelope, validation errors, run logs


@dataclass(frozen=True)
class Routed:
    """What routing made of one record: any mix of deliveries and dead letters.

    One event may feed several routes; a route that fails to map dead-letters on its
    own while the others deliver. ``dropped`` is set when no route matched and the
    config says to drop such events (counted, not stored).
    """

    record: SourceRecord
    deliveries: tuple[NewDelivery, ...] = ()
    dead_letters: tuple[NewDeadLetter, ...] = field(default=())
    dropped: bool = False
