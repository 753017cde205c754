"""The auth circuit as a pure state machine."""

from __future__ import annotations

import pytest

from brew_bridge.core.circuit import Circuit, CircuitState
from brew_bridge.targets.brew.target import auth_fix_hint


def refuse(c: Circuit, now: float, status: int, code: str, message: str) -> None:
    """What the auth gate does with a 401/403 from Brew."""
    c.record_auth_failure(
        now, status=status, code=code, message=message, hint=auth_fix_hint(status, code)
    )


def test_closed_lets_everything_through() -> None:
    c = Circuit(probe_interval=10)
    assert c.allow(0.0)
    assert c.allow(0.0)
    assert not c.is_open


def test_auth_failure_opens_then_one_probe_per_interval() -> None:
    c = Circuit(probe_interval=10)
    refuse(c, 100.0, 401, "INVALID_API_KEY", "bad key")
    assert c.is_open
    assert c.trip is not None
    assert (c.trip.code, c.trip.opened_at) == ("INVALID_API_KEY", 100.0)
    assert "BREW_API_KEY" in c.trip.hint
    assert not c.allow(105.0)
    assert c.allow(110.0)  # the probe
    assert c.state is CircuitState.HALF_OPEN
    assert not c.allow(110.5)  # only one probe in flight


def test_probe_failure_reopens_and_keeps_first_opened_at() -> None:
    c = Circuit(probe_interval=10)
    refuse(c, 100.0, 401, "INVALID_API_KEY", "bad")
    assert c.allow(110.0)
    refuse(c, 110.2, 401, "INVALID_API_KEY", "bad")
    assert c.state is CircuitState.OPEN
    assert c.trip is not None
    assert c.trip.opened_at == 100.0
    assert not c.allow(115.0)
    assert c.allow(120.2)


def test_probe_success_closes() -> None:
    c = Circuit(probe_interval=10)
    refuse(c, 0.0, 403, "INSUFFICIENT_PERMISSIONS", "scope")
    assert c.allow(10.0)
    c.record_success(10.1)
    assert c.state is CircuitState.CLOSED
    assert c.trip is None
    assert c.allow(10.2)


def test_probe_without_answer_waits_another_interval() -> None:
    c = Circuit(probe_interval=10)
    refuse(c, 0.0, 401, "INVALID_API_KEY", "bad")
    assert c.allow(10.0)
    c.record_no_answer(11.0)
    assert c.state is CircuitState.OPEN
    assert not c.allow(20.0)
    assert c.allow(21.0)


def test_lost_probe_is_replaced_after_an_interval() -> None:
    c = Circuit(probe_interval=10)
    refuse(c, 0.0, 401, "INVALID_API_KEY", "bad")
    assert c.allow(10.0)
    assert not c.allow(19.9)
    assert c.allow(20.0)


def test_no_answer_while_closed_changes_nothing() -> None:
    c = Circuit()
    c.record_no_answer(1.0)
    assert c.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("status", "code", "needle"),
    [
        (401, "INVALID_API_KEY", "valid key"),
        (401, "API_KEY_MISSING", "api_key_file"),
        (403, "INSUFFICIENT_PERMISSIONS", "'automations'"),
        (403, "BRAND_SCOPE_MISMATCH", "brew.brand_id"),
    ],
)
def test_hint_names_the_fix(status: int, code: str, needle: str) -> None:
    assert needle in auth_fix_hint(status, code)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="probe_interval"):
        Circuit(probe_interval=0)
