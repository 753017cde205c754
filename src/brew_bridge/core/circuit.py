"""The auth circuit: a 401/403 from a target stops firing until the key works again.

The same goes for an answer about the setup rather than the event (the target types it
as an ``AuthError``: Brew's ``BRAND_NOT_FOUND``, ``BRAND_ID_REQUIRED``): like a refused
key, every event would get it until an operator fixes the configuration.

An authentication, permission or configuration failure is not the event's fault, so
nothing is dead-lettered and no attempt is spent: rows stay pending, runs are not read,
readiness turns false, the log says what to fix. After ``probe_interval`` one call is
let through as a probe (the caller re-reads the key from its file or environment for
every request, so a rotated key is picked up by the probe); any HTTP answer that is not
a refusal closes the circuit.

Pure state machine (``now`` passed in, no I/O), shared by the dispatcher and the
poller, which set ``metrics.circuit_open`` and ``/readyz`` from :attr:`Circuit.is_open`.

    closed ──auth error──> open ──probe_interval──> half_open ──answer──> closed
                            ▲                           │ auth error / no answer
                            └───────────────────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AuthTrip", "Circuit", "CircuitState"]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class AuthTrip:
    """Why the circuit opened: the target's answer (never the key itself) and when."""

    status: int
    code: str
    message: str
    opened_at: float
    hint: str


class Circuit:
    """Closed / open / half-open for authentication failures. Not thread-safe (asyncio)."""

    def __init__(self, probe_interval: float = 30.0) -> None:
        if probe_interval <= 0:
            raise ValueError("probe_interval must be > 0 seconds")
        self.probe_interval = probe_interval
        self.state = CircuitState.CLOSED
        self.trip: AuthTrip | None = None
        self.next_probe_at: float | None = None
        self._probe_started_at: float | None = None

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open or probing): readiness is false."""
        return self.state is not CircuitState.CLOSED

    def allow(self, now: float) -> bool:
        """May a call go out now? While open, exactly one probe per interval.

        A probe whose result never comes back (its task died) is replaced after
        another interval, so the circuit cannot stay half-open for ever.
        """
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.HALF_OPEN:
            started = self._probe_started_at
            if started is not None and now < started + self.probe_interval:
                return False
        elif self.next_probe_at is not None and now < self.next_probe_at:
            return False
        self.state = CircuitState.HALF_OPEN
        self._probe_started_at = now
        return True

    def record_auth_failure(
        self, now: float, *, status: int, code: str, message: str, hint: str
    ) -> None:
        """A 401/403, a setup answer or no key at all: open, or stay open, and schedule
        the next probe.

        ``hint`` is the target's one-sentence fix for that answer (see ``Target.auth_hint``).
        """
        first = self.trip if self.trip is not None and self.is_open else None
        self.trip = AuthTrip(
            status=status,
            code=code,
            message=message,
            opened_at=first.opened_at if first is not None else now,
            hint=hint,
        )
        self.state = CircuitState.OPEN
        self.next_probe_at = now + self.probe_interval
        self._probe_started_at = None

    def record_success(self, now: float) -> None:
        """Any HTTP answer that is not a refusal: the key and setup work, close."""
        del now  # kept for symmetry with the other transitions
        self.state = CircuitState.CLOSED
        self.trip = None
        self.next_probe_at = None
        self._probe_started_at = None

    def record_no_answer(self, now: float) -> None:
        """The probe got no HTTP answer: it proved nothing, probe again later."""
        if self.state is CircuitState.HALF_OPEN:
            self.state = CircuitState.OPEN
            self.next_probe_at = now + self.probe_interval
            self._probe_started_at = None
