"""The retry decision for Brew's answers (Brew's classification, the core's delays),
tested on its own: no clock, no network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brew_bridge.config import RetryConfig
from brew_bridge.core import retry
from brew_bridge.core.retry import Disposition, counts_as_attempt
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TargetError,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import Reason
from brew_bridge.targets.brew.target import classify

POLICY = RetryConfig(
    max_attempts=5,
    max_age_seconds=3600.0,
    base_delay_seconds=0.5,
    max_delay_seconds=10.0,
    retry_after_cap_seconds=60.0,
    no_published_automation_delay_seconds=60.0,
    no_published_automation_max_seconds=600.0,
)


def next_delay(
    attempt: int, elapsed: float, outcome: BaseException, policy: RetryConfig, rand: float
) -> float | None:
    """The delay the dispatcher computes for a Brew outcome."""
    return retry.next_delay(attempt, elapsed, outcome, classify(outcome), policy, rand)


def dead_letter_reason(outcome: BaseException) -> Reason | None:
    return retry.dead_letter_reason(classify(outcome))


def api_error(status: int, code: str = "X", retry_after: float | None = None) -> ApiError:
    cls = {401: AuthError, 403: AuthError, 429: RateLimited}.get(status, ApiError)
    return cls(status=status, code=code, type="t", message="m", retry_after=retry_after)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_back_off(status: int) -> None:
    assert classify(api_error(status)) is Disposition.RETRY
    assert next_delay(0, 0.0, api_error(status), POLICY, 0.5) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "outcome", [TransportError("connect refused"), UnknownOutcome("read timeout")]
)
def test_no_answer_is_retried(outcome: BaseException) -> None:
    assert next_delay(1, 0.0, outcome, POLICY, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "INVALID_REQUEST"),
        (404, "TRIGGER_EVENT_NOT_FOUND"),
        (409, "IDEMPOTENCY_CONFLICT"),
        (402, "INSUFFICIENT_CREDITS"),
        (501, "NOT_IMPLEMENTED"),
        (505, "X"),
        (200, "READY"),
    ],
)
def test_permanent_refusals_are_not_retried(status: int, code: str) -> None:
    outcome = api_error(status, code)
    assert next_delay(0, 0.0, outcome, POLICY, 0.5) is None
    assert dead_letter_reason(outcome) is Reason.FIRE_REJECTED


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_neither_retried_nor_dead_lettered(status: int) -> None:
    outcome = api_error(status, "INVALID_API_KEY")
    assert classify(outcome) is Disposition.AUTH
    assert next_delay(0, 0.0, outcome, POLICY, 0.5) is None
    assert dead_letter_reason(outcome) is None


def test_idempotency_in_progress_is_the_409_that_is_retried() -> None:
    outcome = api_error(409, "IDEMPOTENCY_IN_PROGRESS")
    assert next_delay(0, 0.0, outcome, POLICY, 1.0) == pytest.approx(0.5)


def test_backoff_is_exponential_full_jitter_capped() -> None:
    outcome = TransportError("x")
    assert [next_delay(a, 0.0, outcome, POLICY, 1.0) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    big = RetryConfig(max_attempts=10_000, base_delay_seconds=0.5, max_delay_seconds=10.0)
    assert next_delay(7, 0.0, outcome, big, 1.0) == 10.0
    assert next_delay(5000, 0.0, outcome, big, 1.0) == 10.0  # no overflow
    assert next_delay(3, 0.0, outcome, POLICY, 0.0) == 0.0


def test_retry_after_replaces_backoff_and_is_capped() -> None:
    assert next_delay(0, 0.0, api_error(429, retry_after=42), POLICY, 0.1) == 42.0
    assert next_delay(0, 0.0, api_error(503, retry_after=5), POLICY, 0.1) == 5.0
    assert next_delay(0, 0.0, api_error(429, retry_after=600), POLICY, 0.1) == 60.0


def test_attempts_bound() -> None:
    outcome = api_error(500)
    assert next_delay(3, 0.0, outcome, POLICY, 0.5) is not None  # 4th attempt failed
    assert next_delay(4, 0.0, outcome, POLICY, 0.5) is None  # 5th = max_attempts
    assert dead_letter_reason(outcome) is Reason.RETRIES_EXHAUSTED
    assert dead_letter_reason(UnknownOutcome("x")) is Reason.RETRIES_EXHAUSTED


def test_age_bound() -> None:
    outcome = api_error(429, retry_after=30)
    assert next_delay(0, 3570.0, outcome, POLICY, 0.5) == 30.0
    assert next_delay(0, 3571.0, outcome, POLICY, 0.5) is None


def test_no_published_automation_waits_long_then_gives_up() -> None:
    outcome = api_error(422, "NO_PUBLISHED_AUTOMATION")
    assert classify(outcome) is Disposition.WAIT_FOR_PUBLISH
    # Not bounded by max_attempts (5), only by its own time budget.
    assert next_delay(40, 540.0, outcome, POLICY, 0.0) == 60.0
    assert next_delay(41, 541.0, outcome, POLICY, 0.0) is None
    assert dead_letter_reason(outcome) is Reason.NO_PUBLISHED_AUTOMATION
    never = POLICY.model_copy(update={"no_published_automation_max_seconds": 0.0})
    assert next_delay(0, 0.0, outcome, never, 0.0) is None


def test_other_422_is_rejected() -> None:
    assert next_delay(0, 0.0, api_error(422, "TRIGGER_IMMUTABLE"), POLICY, 0.5) is None


def test_unexpected_exceptions_are_retried_but_cancellation_is_not() -> None:
    assert classify(ValueError("bug")) is Disposition.RETRY
    assert classify(KeyboardInterrupt()) is Disposition.REJECT
    assert classify(TargetError("no status")) is Disposition.REJECT


def test_429_does_not_count_as_an_attempt() -> None:
    assert not counts_as_attempt(api_error(429, "RATE_LIMITED"))
    assert counts_as_attempt(api_error(503))
    assert counts_as_attempt(UnknownOutcome("x"))


def test_429_after_many_attempts_is_still_retried() -> None:
    """Pacing never spends the attempt budget, however many real attempts came first."""
    assert next_delay(4, 0.0, api_error(503), POLICY, 0.5) is None
    assert next_delay(4, 0.0, api_error(429, "RATE_LIMITED", retry_after=2), POLICY, 0.5) == 2.0


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    elapsed=st.floats(min_value=0, max_value=1e6),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
    status=st.sampled_from([400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e5),
)
def test_delay_is_always_within_bounds(
    attempt: int, elapsed: float, rand: float, status: int, retry_after: float | None
) -> None:
    delay = next_delay(attempt, elapsed, api_error(status, retry_after=retry_after), POLICY, rand)
    if delay is None:
        return
    assert (
        0.0
        <= delay
        <= max(
            POLICY.max_delay_seconds,
            POLICY.retry_after_cap_seconds,
            POLICY.no_published_automation_delay_seconds,
        )
    )
    assert elapsed + delay <= POLICY.max_age_seconds
    assert status not in {400, 401, 403, 404, 409}
