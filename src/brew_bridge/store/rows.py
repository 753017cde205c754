"""The rows the outbox hands out and the results it reports: plain frozen data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from brew_bridge.events import SourceRecord

__all__ = [
    "DELIVERY_STATES",
    "LIVE_STATES",
    "DeadLetterRow",
    "DeliveryRow",
    "DeliveryState",
    "FiredMark",
    "OutboxOverview",
    "OutboxStats",
    "PruneResult",
    "RunRecord",
    "StoreResult",
]

DeliveryState = Literal["pending", "firing", "fired", "retry_wait", "dead"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "firing", "fired", "retry_wait", "dead")
# Rows that still need work: what backpressure counts.
LIVE_STATES: tuple[DeliveryState, ...] = ("pending", "retry_wait", "firing")


@dataclass(frozen=True, slots=True)
class FiredMark:
    """A fire the target accepted, to record: firing -> fired, and its runs."""

    delivery_id: int
    instance_id: str | None
    run_ids: tuple[str, ...]
    code: str
    now: float
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one :meth:`Outbox.prune` deleted (or, with ``dry_run``, would delete)."""

    deliveries: int = 0
    runs: int = 0
    dead_letters: int = 0
    records: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one :meth:`Outbox.store_batch` did; the per-label counts feed the metrics."""

    inserted: int = 0  # new deliveries
    duplicates: int = 0  # deliveries whose (route, key) was already there
    dead_letters: int = 0  # new ingest dead letters
    dead_letter_duplicates: int = 0  # ingest dead letters already stored (replayed batch)
    dropped: int = 0  # records dropped on purpose (no route, no_route: drop)
    records: int = 0  # source records newly stored
    inserted_by_route: Mapping[str, int] = field(default_factory=dict)
    duplicates_by_route: Mapping[str, int] = field(default_factory=dict)
    # (route or "", reason) -> new dead letters
    dead_letters_by_reason: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # The positions of the records that became ingest dead letters and nothing else (new
    # or stored already): a queue source may reject those to its broker's dead letters.
    dead_lettered: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery as the dispatcher sees it."""

    id: int
    route: str
    target: str
    action: str
    idempotency_key: str
    payload: dict[str, Any]
    ordering_key: str | None
    event_id: str | None
    state: DeliveryState
    attempts: int
    created_at: float
    first_attempt_at: float | None
    next_attempt_at: float
    last_error: dict[str, Any] | None
    record: SourceRecord | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run a fire started, as the poller sees it."""

    run_id: str
    delivery_id: int
    route: str
    target: str
    action: str
    idempotency_key: str
    event_id: str | None
    status: str
    fired_at: float
    last_checked_at: float | None
    ref: str | None = None  # the target's locator besides the run id (FireAccepted.ref)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One dead letter with everything needed to understand and redrive it."""

    id: int
    stage: str
    reason: str
    code: str | None
    message: str
    attempts: int
    route: str | None
    idempotency_key: str | None
    delivery_id: int | None
    run_id: str | None
    details: dict[str, Any] | None
    record: SourceRecord | None
    first_error_at: float
    last_error_at: float
    created_at: float
    redriven_at: float | None
    published_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts for metrics and ``brew-bridge outbox stats``."""

    deliveries: Mapping[str, int]  # every state in DELIVERY_STATES, zero included
    backlog: int  # pending + retry_wait + firing
    live_runs: int
    runs_by_status: Mapping[str, int]
    dead_letters: int
    dead_letters_unredriven: int
    dead_letters_unpublished: int
    oldest_pending_age: float | None  # seconds since the oldest pending/retry_wait row arrived


@dataclass(frozen=True, slots=True)
class OutboxOverview:
    """The counts and the newest dead letters, read in one snapshot (the status page)."""

    stats: OutboxStats
    dead_letters_by_reason: Mapping[str, int]
    not_redriven_by_reason: Mapping[str, int]
    newest_dead_letters: tuple[DeadLetterRow, ...]
