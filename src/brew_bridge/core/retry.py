"""The retry decision for fires: a pure function of (attempt, age, outcome, disposition).

Kept apart from the dispatcher so it can be read and tested on its own, the way httpx
tests its auth flow: no clock, no randomness, no I/O — the caller passes ``elapsed`` and
a uniform ``rand`` in [0, 1).

What an outcome *means* is the target's call (:meth:`Target.classify` sorts it into a
:class:`Disposition`: Brew retries 408/429/5xx and ``409 IDEMPOTENCY_IN_PROGRESS``, waits
long on ``422 NO_PUBLISHED_AUTOMATION``, rejects other refusals); how long to wait and
when to give up is decided here, the same for every target:

* ``RETRY``: full jitter ``min(base * 2**attempt, max_delay) * rand``; a server's
  ``Retry-After`` (as the target's client parsed it into :class:`ApiError`) replaces
  the backoff, capped at ``retry_after_cap_seconds``; bounded by ``max_attempts`` and
  ``max_age_seconds``;
* ``WAIT_FOR_PUBLISH``: a long fixed delay for a bounded time, because someone may be
  publishing the automation right now;
* ``AUTH``: never retried here and never dead-lettered: the auth gate holds the rows;
* ``REJECT``: dead-lettered now;
* ``UNKNOWN_OUTCOME``: dead-lettered now as ``outcome_unknown`` (a target without
  idempotency keys cannot resolve a fire that got no answer by firing again).

Waiting for the rate budget is not an attempt: the caller waits for the budget *before*
sending and never passes that wait here or counts it in ``attempt``. A 429 is a real
answer, but :func:`counts_as_attempt` says not to count it either, so a burst of 429s
alone can never exhaust the attempts and dead-letter an event.
"""

from __future__ import annotations

import math
from enum import StrEnum

from ..config.sections import RetryConfig
from ..errors import ApiError, RateLimited
from ..events import Reason

__all__ = [
    "Disposition",
    "counts_as_attempt",
    "dead_letter_reason",
    "next_delay",
]


class Disposition(StrEnum):
    """What an outcome means for the event that produced it."""

    RETRY = "retry"  # transient: back off and send again with the same key
    WAIT_FOR_PUBLISH = "wait_for_publish"  # the target cannot act yet: long backoff
    AUTH = "auth"  # the key is refused: open the circuit, keep the row, never dead-letter
    REJECT = "reject"  # the target refused this request for good: dead-letter it now
    # No answer, and the target has no idempotency key: a second fire could run the work
    # twice, so dead-letter it as outcome_unknown (the operator decides).
    UNKNOWN_OUTCOME = "unknown_outcome"


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
    attempt: int,
    elapsed: float,
    outcome: BaseException,
    disposition: Disposition,
    policy: RetryConfig,
    rand: float,
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
    ``WAIT_FOR_PUBLISH`` ignores ``max_attempts``: it waits
    ``no_published_automation_delay_seconds`` between tries and gives up once the next
    try would start past ``no_published_automation_max_seconds``.
    """
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


def dead_letter_reason(disposition: Disposition) -> Reason | None:
    """The dead-letter reason for an outcome once :func:`next_delay` gave up.

    ``None`` for auth failures: they are never dead-lettered (the row stays pending
    behind the open circuit).
    """
    if disposition is Disposition.AUTH:
        return None
    if disposition is Disposition.WAIT_FOR_PUBLISH:
        return Reason.NO_PUBLISHED_AUTOMATION
    if disposition is Disposition.RETRY:
        return Reason.RETRIES_EXHAUSTED
    if disposition is Disposition.UNKNOWN_OUTCOME:
        return Reason.OUTCOME_UNKNOWN
    return Reason.FIRE_REJECTED
