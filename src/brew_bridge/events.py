"""The plain data that flows between sources, routing, the outbox and delivery.

Frozen dataclasses, no behaviour: sources build :class:`SourceRecord`, routing turns
each into a :class:`Routed` (deliveries to queue, dead letters to store), the outbox
stores both in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

__all__ = [
    "DEAD_LETTER_REASONS",
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "TIMED_OUT",
    "DeadLetterStage",
    "FireAccepted",
    "NewDeadLetter",
    "NewDelivery",
    "Reason",
    "Routed",
    "RunRead",
    "SourceRecord",
    "is_terminal",
    "numbered_position",
    "run_dead_letter_reason",
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
    UNSTORABLE = "unstorable"  # a value the outbox cannot hold (a lone surrogate, ...)
    STALE_REPLAY = "stale_replay"  # older than the outbox keeps keys: it may have fired
    # fire: the target refused the fire for good
    FIRE_REJECTED = "fire_rejected"
    NO_PUBLISHED_AUTOMATION = "no_published_automation"
    RETRIES_EXHAUSTED = "retries_exhausted"
    # a late re-fire (past the key window) whose earlier outcome cannot be looked up
    OUTCOME_UNKNOWN = "outcome_unknown"
    # run: the run ended badly
    RUN_FAILED = "run_failed"
    RUN_CANCELED = "run_canceled"
    RUN_TIMED_OUT = "run_timed_out"


# The run status vocabulary, defined once. Every target translates its own words into
# these (Brew's ``queued`` is ``pending``, its ``cancelled`` is ``canceled``); ``timed_out``
# is ours: the poller gave up at the deadline. A status that is not terminal is treated
# as live, so an unknown word never ends a run.
TIMED_OUT: Final = "timed_out"
LIVE_STATUSES: Final = frozenset({"pending", "scheduled", "running", "paused"})
TERMINAL_STATUSES: Final = frozenset(
    {"completed", "partially_completed", "failed", "canceled", TIMED_OUT}
)
# The ends that are failures: each becomes a ``run`` dead letter with this reason.
DEAD_LETTER_REASONS: Final[Mapping[str, Reason]] = {
    "failed": Reason.RUN_FAILED,
    "canceled": Reason.RUN_CANCELED,
    TIMED_OUT: Reason.RUN_TIMED_OUT,
}


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def run_dead_letter_reason(status: str) -> Reason | None:
    """The dead-letter reason of a run's end, or None for a good end (or a live status)."""
    return DEAD_LETTER_REASONS.get(status)


@dataclass(frozen=True)
class SourceRecord:
    """One record as a source delivered it, kept byte for byte so it can be redriven.

    ``stream`` is what routes match (a topic, a queue, a subject, a webhook source's
    name); ``position`` is where the record sits in it, unique per record and opaque to
    everything but its source (a Kafka source writes ``partition:offset``).
    """

    source: str  # the kind of source that read it
    stream: str
    position: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @property
    def coordinates(self) -> str:
        """``stream:position``: unique per record, but not stable across re-publishing."""
        return f"{self.stream}:{self.position}"


def numbered_position(position: str) -> tuple[int, int] | None:
    """A position of the form ``<int>:<int>`` (a partitioned log's ``partition:offset``,
    as a Kafka source writes it) as its two numbers; None for any other position."""
    partition, sep, offset = position.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        return None
    return int(partition), int(offset)


@dataclass(frozen=True)
class NewDelivery:
    """A mapped, validated payload ready to be fired once."""

    route: str
    target: str  # the configured target that fires it
    action: str  # what the target fires (a Brew trigger id)
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
    code: str | None = None  # the target's error code, for fire/run dead letters
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


@dataclass(frozen=True)
class FireAccepted:
    """A target accepted a fire (first time, or a replay of it): these runs follow it."""

    code: str  # the target's word for it, e.g. TRIGGERED / IDEMPOTENT_REPLAY: a metric label
    instance_id: str | None  # the target's id of this fire, when it has one
    run_ids: tuple[str, ...]
    request_id: str | None = None
    # What the target needs besides a run id to read the run again, stored with each run
    # (:attr:`RunRecord.ref`): Pinkfish's automation id, Boring Marketing's brand id.
    ref: str | None = None


@dataclass(frozen=True)
class RunRead:
    """What one read of a run showed, in the bridge's status vocabulary."""

    run_id: str
    status: str
    error: str | None = None
    logs: tuple[dict[str, Any], ...] | None = None  # the target's node logs, when read
    ended_at: float | None = None  # when the target says the run ended (epoch seconds)
    # What the run produced, when the target has it (Pinkfish's results): on the
    # result-topic record, and in a failed run's dead letter.
    output: dict[str, Any] | None = None
    # The target canceled this run as stuck: fire its delivery again (up to the
    # target's max_refires runs more), instead of dead-lettering it as canceled.
    refire: bool = False
