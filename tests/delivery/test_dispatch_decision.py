"""The dispatcher's decision after one fire attempt, and the auth gate: no I/O."""

from __future__ import annotations

import pytest

from brew_bridge.config import RetryConfig
from brew_bridge.core.authgate import AuthGate
from brew_bridge.core.circuit import Circuit
from brew_bridge.core.dispatcher import (
    AuthRefused,
    DeadLetter,
    Fired,
    RetryLater,
    decide,
    outcome_code,
)
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import FireAccepted, Reason
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.brew.target import auth_fix_hint, classify

NOW = 1_700_000_000.0
POLICY = RetryConfig(
    max_attempts=5,
    max_age_seconds=3600,
    base_delay_seconds=1.0,
    max_delay_seconds=30.0,
    no_published_automation_delay_seconds=60.0,
    no_published_automation_max_seconds=600.0,
)


def api_error(status: int, code: str, **kw: object) -> ApiError:
    cls = {401: AuthError, 403: AuthError, 429: RateLimited}.get(status, ApiError)
    return cls(status=status, code=code, type="t", message=f"{code} happened", **kw)  # type: ignore[arg-type]


def run(outcome: object, *, attempts: int = 0, age: float = 0.0, rand: float = 0.5) -> object:
    return decide(
        outcome,  # type: ignore[arg-type]
        disposition=None if isinstance(outcome, FireAccepted) else classify(outcome),  # type: ignore[arg-type]
        attempts=attempts,
        first_attempt_at=NOW - age,
        now=NOW,
        policy=POLICY,
        rand=rand,
    )


def test_triggered_records_instance_and_every_run() -> None:
    result = FireAccepted(
        code="TRIGGERED",
        instance_id="tin_1",
        run_ids=("run_a", "run_b"),
        request_id="req_1",
    )
    assert run(result) == Fired("TRIGGERED", "tin_1", ("run_a", "run_b"))


def test_idempotent_replay_is_success_with_the_original_runs() -> None:
    result = FireAccepted(
        code="IDEMPOTENT_REPLAY",
        instance_id="tin_1",
        run_ids=("run_a",),
        request_id=None,
    )
    assert run(result, attempts=3) == Fired("IDEMPOTENT_REPLAY", "tin_1", ("run_a",))


@pytest.mark.parametrize(
    "outcome",
    [
        UnknownOutcome("read timeout after the request was sent"),
        TransportError("connection refused"),
        api_error(500, "INTERNAL_ERROR"),
        api_error(503, "SERVICE_UNAVAILABLE"),
        api_error(409, "IDEMPOTENCY_IN_PROGRESS"),
        ValueError("a bug of ours"),
    ],
    ids=lambda o: outcome_code(o),
)
def test_transient_outcomes_retry_with_jittered_backoff_and_count_the_attempt(
    outcome: BaseException,
) -> None:
    decision = run(outcome, attempts=2, rand=0.5)
    assert isinstance(decision, RetryLater)
    assert decision.count_attempt
    assert decision.next_attempt_at == pytest.approx(NOW + 0.5 * 1.0 * 2**2)
    assert decision.error["code"] == outcome_code(outcome)


def test_unknown_outcome_keeps_what_happened() -> None:
    decision = run(UnknownOutcome("reset after send"))
    assert isinstance(decision, RetryLater)
    assert decision.error == {
        "status": None,
        "code": "UNKNOWN_OUTCOME",
        "message": "reset after send",
    }


def test_retry_after_wins_over_backoff() -> None:
    decision = run(api_error(503, "SERVICE_UNAVAILABLE", retry_after=7.0), rand=0.0)
    assert isinstance(decision, RetryLater)
    assert decision.next_attempt_at == NOW + 7.0


def test_a_429_is_pacing_not_an_attempt() -> None:
    decision = run(api_error(429, "RATE_LIMITED", retry_after=3.0), attempts=4)
    assert isinstance(decision, RetryLater)
    assert not decision.count_attempt
    assert decision.next_attempt_at == NOW + 3.0


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "INVALID_PAYLOAD"), (404, "TRIGGER_EVENT_NOT_FOUND"), (409, "IDEMPOTENCY_CONFLICT")],
)
def test_permanent_refusals_are_dead_lettered_with_the_whole_envelope(
    status: int, code: str
) -> None:
    error = api_error(status, code, request_id="req_9", details={"errors": [{"field": "email"}]})
    decision = run(error)
    assert isinstance(decision, DeadLetter)
    assert decision.reason is Reason.FIRE_REJECTED
    assert decision.code == code
    assert decision.error == error.envelope()
    assert decision.error["requestId"] == "req_9"
    assert decision.error["details"] == {"errors": [{"field": "email"}]}


def test_no_published_automation_waits_long_then_gives_up() -> None:
    error = api_error(422, "NO_PUBLISHED_AUTOMATION")
    waiting = run(error, attempts=9, age=100)
    assert isinstance(waiting, RetryLater)
    assert waiting.next_attempt_at == NOW + 60.0
    given_up = run(error, attempts=10, age=590)
    assert isinstance(given_up, DeadLetter)
    assert given_up.reason is Reason.NO_PUBLISHED_AUTOMATION
    assert given_up.code == "NO_PUBLISHED_AUTOMATION"


def test_retries_run_out_by_attempts_and_by_age() -> None:
    by_attempts = run(api_error(500, "INTERNAL_ERROR"), attempts=4)
    assert isinstance(by_attempts, DeadLetter)
    assert by_attempts.reason is Reason.RETRIES_EXHAUSTED
    assert "5 attempts" in by_attempts.message
    by_age = run(UnknownOutcome("timeout"), attempts=1, age=3599.9, rand=0.99)
    assert isinstance(by_age, DeadLetter)
    assert by_age.reason is Reason.RETRIES_EXHAUSTED
    assert by_age.code == "UNKNOWN_OUTCOME"


@pytest.mark.parametrize(
    ("status", "code"), [(401, "INVALID_API_KEY"), (403, "INSUFFICIENT_PERMISSIONS")]
)
def test_auth_failures_are_never_dead_lettered(status: int, code: str) -> None:
    assert run(api_error(status, code), attempts=9, age=3599) == AuthRefused(
        status, code, f"{code} happened"
    )


def test_gate_opens_on_auth_reports_why_and_closes_on_any_answer() -> None:
    metrics = Metrics()
    gate = AuthGate(
        Circuit(probe_interval=5.0), metrics, target="brew", title="Brew", hint=auth_fix_hint
    )
    gauge = "brew_bridge_circuit_open"
    assert gate.reason() is None
    assert metrics.registry.get_sample_value(gauge, {"target": "brew"}) == 0

    gate.observe(api_error(401, "INVALID_API_KEY"), NOW)
    assert gate.is_open
    assert metrics.registry.get_sample_value(gauge, {"target": "brew"}) == 1
    reason = gate.reason()
    assert reason is not None
    assert "401 INVALID_API_KEY" in reason
    assert "BREW_API_KEY" in reason  # says what to fix
    assert not gate.allow(NOW + 1)  # no calls until the probe is due
    assert gate.seconds_to_probe(NOW + 1) == pytest.approx(4.0)

    assert gate.allow(NOW + 5)  # one probe
    assert not gate.allow(NOW + 5.1)
    gate.observe(TransportError("refused"), NOW + 5.2)  # proved nothing
    assert gate.is_open
    assert gate.allow(NOW + 10.3)
    gate.observe(api_error(500, "INTERNAL_ERROR"), NOW + 10.4)  # an answer: the key works
    assert not gate.is_open
    assert metrics.registry.get_sample_value(gauge, {"target": "brew"}) == 0
