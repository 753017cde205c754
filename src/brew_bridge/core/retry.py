"""The retry decision for Brew calls: a pure function of (attempt, age, outcome).

Kept apart from the client and the dispatcher so it can be read and tested on its
own, the way httpx tests its auth flow: no clock, no randomness, no I/O — the caller
passes ``elapsed`` and a uniform ``rand`` in [0, 1).

What is retried (matching the official SDK, see brew-sdk-behaviour.md §5):

* no answer: connect errors, timeouts, resets (:class:`TransportError`, including
  :class:`UnknownOutcome` — a fire whose outcome is unknown is resolved by firing
  again with the same Idempotency-Key, which Brew answers ``idempotent_replay``);
* HTTP 408, 429, 500, 502, 503, 504;
* ``409 IDEMPOTENCY_IN_PROGRESS``: the first request with this key is still running,
  asking again later gets its result;
* ``422 NO_PUBLISHED_AUTOMATION``: on a long, fixed backoff for a bounded time, because
  someone may be publishing the automation right now.

Never retried: 400, 401, 403, 404, 409 (other codes) and every other status. 401/403
are not dead-lettered either: they open the circuit (see ``circuit.py``).

Delays: full jitter ``min(base * 2**attempt, max_delay) * rand``; a server's
``Retry-After`` (body ``retryAfter`` first, then the header, as the client parsed it)
replaces the backoff, capped at ``retry_after_cap_seconds``.

Waiting for the rate budget is not an attempt: the caller waits for the budget
*before* sending and never passes that wait here or counts it in ``attempt``. A 429
is a real answer, but :func:`counts_as_attempt` says not to count it either, so a
burst of 429s alone can never exhaust the attempts and dead-letter an event.
"""

from __future__ import annotations

import math
from enum import StrEnum

from brew_bridge.config import RetryConfig
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TargetError,
    TransportError,
)
from brew_bridge.events import Reason

__all__ = [
    "RETRYABLE_STATUSES",
    "Disposition",
    "classify",
    "counts_as_attempt",
    "dead_letter_reason",
    "next_delay",
]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_IDEMPOTENCY_IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"
_NO_PUBLISHED_AUTOMATION = "NO_PUBLISHED_AUTOMATION"


class Disposition(StrEnum):
    """What an outcome means for the event that produced it."""

    RETRY = "retry"  # transient: back off and send again with the same key
    WAIT_FOR_PUBLISH = "wait_for_publish"  # 422 NO_PUBLISHED_AUTOMATION: long backoff
    AUTH = "auth"  # 401/403: open the circuit, keep the row pending, never dead-letter
    REJECT = "reject"  # Brew refused this request for good: dead-letter it now


def classify(outcome: BaseException) -> Disposition:
    """Sort an outcome of one call into what to do about it.

    Exceptions that are not Brew errors (a bug, an unexpected library error) are
    retried: bounded by attempts and age, that loses nothing, while rejecting would
    dead-letter good events because of our own fault.
    """
    if isinstance(outcome, AuthError):
        return Disposition.AUTH
    if isinstance(outcome, ApiError):
        if outcome.status in RETRYABLE_STATUSES:
            return Disposition.RETRY
        if outcome.status == 409 and outcome.code == _IDEMPOTENCY_IN_PROGRESS:
            return Disposition.RETRY
        if outcome.status == 422 and outcome.code == _NO_PUBLISHED_AUTOMATION:
            return Disposition.WAIT_FOR_PUBLISH
        return Disposition.REJECT
    if isinstance(outcome, TransportError):
        return Disposition.RETRY
    if isinstance(outcome, TargetError) or not isinstance(outcome, Exception):
        # A bare TargetError has no status to judge; BaseException (cancellation,
        # KeyboardInterrupt) must never be turned into a retry.
        return Disposition.REJECT
    return Disposition.RETRY


def counts_as_attempt(outcome: BaseException) -> bool:
    """Whether this outcome should count against ``max_attempts``.

    A 429 means Brew did nothing and told us when to come back: like waiting for the
    local rate budget, it is pacing, not a failed attempt.
    """
    return not isinstance(outcome, RateLimited)


def _backoff(attempt: int, policy: RetryConfig, rand: float) -> float:
    # 2**attempt overflows float range long after it passes any sane max_delay.
    exponent = min(max(attempt, 0), 1000)
    cap = min(policy.base_delay_seconds * math.pow(2.0, exponent), policy.max_delay_seconds)
    return cap * min(max(rand, 0.0), 1.0)


def next_delay(
    attempt: int, elapsed: float, outcome: BaseException, policy: RetryConfig, rand: float
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up.

    ``attempt``: zero-based index of the attempt that just failed (0 = the first try),
    i.e. how many attempts were counted before it. ``elapsed``: seconds from the first
    attempt to now (the event's age in delivery). ``rand``: uniform in [0, 1), the
    jitter. Pure: same arguments, same answer.

    Gives up when the outcome is permanent (REJECT) or an auth failure (AUTH: the
    circuit handles it), when ``attempt + 1`` attempts reach ``max_attempts`` (a 429 is
    pacing, not an attempt, so it never hits that bound), or when the next attempt would
    start past ``max_age_seconds``.
    ``422 NO_PUBLISHED_AUTOMATION`` ignores ``max_attempts``: it waits
    ``no_published_automation_delay_seconds`` between tries and gives up once the next
    try would start past ``no_published_automation_max_seconds``.
    """
    disposition = classify(outcome)
    if disposition is Disposition.WAIT_FOR_PUBLISH:
        delay = policy.no_published_automation_delay_seconds
        limit = min(policy.no_published_automation_max_seconds, policy.max_age_seconds)
        return delay if elapsed + delay <= limit else None
    if disposition is not Disposition.RETRY:
        return None
    if counts_as_attempt(outcome) and attempt + 1 >= policy.max_attempts:
        return None
    retry_after = outcome.retry_after if isinstance(outcome, ApiError) else None
    if retry_after is not None and retry_after >= 0:
        delay = min(retry_after, policy.retry_after_cap_seconds)
    else:
        delay = _backoff(attempt, policy, rand)
    return delay if elapsed + delay <= policy.max_age_seconds else None


def dead_letter_reason(outcome: BaseException) -> Reason | None:
    """The dead-letter reason for an outcome once :func:`next_delay` gave up.

    ``None`` for auth failures: they are never dead-lettered (the row stays pending
    behind the open circuit).
    """
    disposition = classify(outcome)
    if disposition is Disposition.AUTH:
        return None
    if disposition is Disposition.WAIT_FOR_PUBLISH:
        return Reason.NO_PUBLISHED_AUTOMATION
    if disposition is Disposition.RETRY:
        return Reason.RETRIES_EXHAUSTED
    return Reason.FIRE_REJECTED
