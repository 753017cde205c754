"""The auth gate: the :class:`~brew_bridge.core.circuit.Circuit` plus what follows from it
(the metric, the log, readiness). Shared by the dispatcher and the poller: either may
trip it, either may probe.

It opens on an :class:`~brew_bridge.errors.AuthError`: a 401/403, or an answer the
target's client types as one because it is about the bridge's setup rather than one
event or run (for Brew: ``400 BRAND_ID_REQUIRED``, ``404 BRAND_NOT_FOUND``). Which
answers those are is the target's call; the gate only sees the type.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ..errors import ApiError, AuthError, TransportError
from ..observe.metrics import Metrics
from .circuit import Circuit

__all__ = ["AuthGate"]

log = structlog.get_logger(__name__)


class AuthGate:
    """Opens on a target's :class:`AuthError` (401/403 or a setup answer), closes on its
    next answer that is not one.

    ``target`` is the target's name (the metric label), ``title`` how it is called in
    readiness and logs; ``hint`` turns a refusal's
    ``(status, code)`` into the one-sentence fix an operator needs.
    """

    def __init__(
        self,
        circuit: Circuit,
        metrics: Metrics,
        *,
        target: str,
        title: str,
        hint: Callable[[int, str], str],
    ) -> None:
        self.circuit = circuit
        self._open = metrics.circuit_open.labels(target=target)
        self._target = title
        self._hint = hint
        self._open.set(0)

    @property
    def is_open(self) -> bool:
        return self.circuit.is_open

    def reason(self) -> str | None:
        """For ``/readyz``: None while closed, else what the target said and what to fix."""
        trip = self.circuit.trip
        if not self.circuit.is_open or trip is None:
            return None
        return (
            f"{self._target} answered {trip.status} {trip.code}; firing and polling are paused. "
            f"{trip.hint}"
        )

    def allow(self, now: float) -> bool:
        return self.circuit.allow(now)

    def seconds_to_probe(self, now: float) -> float:
        at = self.circuit.next_probe_at
        return max(0.0, (at if at is not None else now) - now)

    def refused(self, now: float, status: int, code: str, message: str) -> None:
        was_open = self.circuit.is_open
        hint = self._hint(status, code)
        self.circuit.record_auth_failure(now, status=status, code=code, message=message, hint=hint)
        self._open.set(1)
        if not was_open:
            log.error(
                "the target refused the API key or the setup; firing and polling are paused, "
                "rows stay pending",
                target=self._target,
                status=status,
                code=code,
                target_message=message,
                fix=hint,
                probe_every_seconds=self.circuit.probe_interval,
            )

    def answered(self, now: float) -> None:
        if self.circuit.is_open:
            log.warning(
                "the target accepts the API key and setup again; firing and polling resume",
                target=self._target,
            )
        self.circuit.record_success(now)
        self._open.set(0)

    def no_answer(self, now: float) -> None:
        self.circuit.record_no_answer(now)

    def observe(self, outcome: object, now: float) -> None:
        """Feed any call's outcome (a result or an exception) to the gate: an
        :class:`AuthError` opens it (whatever its status), no answer proves nothing, any
        other answer closes it."""
        if isinstance(outcome, AuthError):
            self.refused(now, outcome.status, outcome.code, outcome.message)
        elif isinstance(outcome, TransportError):
            self.no_answer(now)
        elif isinstance(outcome, ApiError) or not isinstance(outcome, BaseException):
            self.answered(now)
