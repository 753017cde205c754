"""The simulator's pure parts — rate window, idempotency store, run clock — with no I/O."""

from __future__ import annotations

import pytest

from brew_bridge.sim.brew.idempotency import Conflict, IdempotencyStore, Replay
from brew_bridge.sim.brew.ratewindow import Policy, RateLimiter, RollingWindow
from brew_bridge.sim.brew.runclock import NodeSpec, RunPlan, run_status, run_view

T0 = 1_700_000_000.0

# -- rolling window ------------------------------------------------------------------------


def test_window_admits_limit_then_refuses_until_the_oldest_leaves() -> None:
    window = RollingWindow(3, 10.0)
    decisions = [window.hit(T0 + i) for i in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = window.hit(T0 + 5.5)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == 5  # the hit at T0 leaves at T0 + 10
    assert refused.reset == int(T0 + 2 + 10)  # when the newest admitted hit leaves
    assert window.hit(T0 + 10.0).allowed  # exactly one window after the first hit


def test_window_is_rolling_not_fixed() -> None:
    window = RollingWindow(2, 60.0)
    assert window.hit(T0).allowed
    assert window.hit(T0 + 59).allowed
    assert not window.hit(T0 + 59.5).allowed
    after = window.hit(T0 + 60)  # the first hit has left; the second is still inside
    assert after.allowed
    assert after.remaining == 0
    assert not window.hit(T0 + 62).allowed


def test_refused_requests_do_not_count() -> None:
    window = RollingWindow(1, 10.0)
    assert window.hit(T0).allowed
    for i in range(50):
        assert not window.hit(T0 + 1 + i * 0.1).allowed
    assert window.hit(T0 + 10.0).allowed


def test_retry_after_is_a_whole_second_at_least() -> None:
    window = RollingWindow(1, 0.2)
    window.hit(T0)
    refused = window.hit(T0 + 0.1)
    assert refused.retry_after == 1
    assert refused.headers()["retry-after"] == "1"


def test_decision_headers_are_integers() -> None:
    decision = RollingWindow(5, 60.0).hit(T0 + 0.25)
    headers = decision.headers()
    assert headers == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "4",
        "x-ratelimit-reset": str(int(T0) + 61),
    }


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        RollingWindow(0, 60.0)


def test_limiter_keeps_one_window_per_key_and_policy() -> None:
    limiter = RateLimiter({"fire": Policy(1, 60.0), "read": Policy(1, 60.0)})
    assert limiter.check("key_a", "fire", T0).allowed
    assert not limiter.check("key_a", "fire", T0).allowed
    assert limiter.check("key_a", "read", T0).allowed  # another policy
    assert limiter.check("key_b", "fire", T0).allowed  # another key


def test_limiter_reconfigure_starts_changed_policies_afresh() -> None:
    limiter = RateLimiter({"fire": Policy(1, 60.0), "read": Policy(1, 60.0)})
    limiter.check("k", "fire", T0)
    limiter.check("k", "read", T0)
    limiter.configure({"fire": Policy(2, 1.0)})
    assert limiter.check("k", "fire", T0).limit == 2
    assert limiter.check("k", "fire", T0).allowed
    assert not limiter.check("k", "read", T0).allowed  # untouched policy keeps its count


# -- idempotency store ---------------------------------------------------------------------


def test_same_key_same_body_replays_the_first_answer() -> None:
    store = IdempotencyStore(100.0)
    assert store.lookup("brand", "k", "body-1", T0) is None
    store.remember("brand", "k", "body-1", {"runs": ["run_1"]}, T0)
    seen = store.lookup("brand", "k", "body-1", T0 + 50)
    assert seen == Replay({"runs": ["run_1"]}, T0)


def test_same_key_other_body_conflicts() -> None:
    store = IdempotencyStore(100.0)
    store.remember("brand", "k", "body-1", "answer", T0)
    assert store.lookup("brand", "k", "body-2", T0 + 1) == Conflict(T0)


def test_keys_are_namespaced() -> None:
    store = IdempotencyStore(100.0)
    store.remember("brand_a", "k", "body-1", "a", T0)
    assert store.lookup("brand_b", "k", "body-2", T0) is None


def test_keys_expire_after_the_window() -> None:
    store = IdempotencyStore(100.0)
    store.remember("b", "old", "x", 1, T0)
    store.remember("b", "new", "x", 2, T0 + 60)
    assert store.lookup("b", "old", "y", T0 + 99.9) == Conflict(T0)
    assert store.lookup("b", "old", "y", T0 + 100) is None
    assert len(store) == 1  # the expired entry is gone, the newer one stays
    assert store.lookup("b", "new", "x", T0 + 100) == Replay(2, T0 + 60)


def test_first_answer_wins() -> None:
    store = IdempotencyStore(100.0)
    store.remember("b", "k", "x", "first", T0)
    store.remember("b", "k", "x", "second", T0 + 1)
    assert store.lookup("b", "k", "x", T0 + 2) == Replay("first", T0)


def test_store_rejects_a_zero_window() -> None:
    with pytest.raises(ValueError, match="window"):
        IdempotencyStore(0)


# -- run clock -----------------------------------------------------------------------------

NODES = (
    NodeSpec("trg", "On signup", "trigger"),
    NodeSpec("wait", "Wait", "wait"),
    NodeSpec("mail", "Send", "sendEmail"),
)


def plan(outcome: str = "completed", **kwargs: object) -> RunPlan:
    values: dict[str, object] = {
        "created_at": T0,
        "pending_seconds": 1.0,
        "duration_seconds": 5.0,
        "outcome": outcome,
        "nodes": NODES,
    }
    values.update(kwargs)
    return RunPlan(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("outcome", ["completed", "failed", "partially_completed"])
def test_status_moves_pending_running_terminal(outcome: str) -> None:
    p = plan(outcome)
    assert run_status(p, T0) == "pending"
    assert run_status(p, T0 + 0.99) == "pending"
    assert run_status(p, T0 + 1.0) == "running"
    assert run_status(p, T0 + 4.99) == "running"
    assert run_status(p, T0 + 5.0) == outcome
    assert run_status(p, T0 + 10_000) == outcome


def test_pending_run_has_no_start_and_no_logs() -> None:
    view = run_view(plan(), T0 + 0.5)
    assert (view.status, view.started_at, view.completed_at, view.logs) == (
        "pending",
        None,
        None,
        (),
    )


def test_running_run_logs_nodes_as_they_start() -> None:
    # running from T0+1 to T0+5: trigger at 1, wait 1..3, send 3..5
    view = run_view(plan(), T0 + 2.0)
    assert view.status == "running"
    assert view.started_at == T0 + 1.0
    assert [(n.node_id, n.status) for n in view.logs] == [("trg", "success"), ("wait", "running")]
    assert view.logs[1].completed_at is None
    assert [n.order_index for n in view.logs] == [0, 1]


def test_completed_run_logs_every_node_success() -> None:
    view = run_view(plan(), T0 + 6.0)
    assert view.status == "completed"
    assert view.completed_at == T0 + 5.0
    assert view.error is None
    assert [n.status for n in view.logs] == ["success", "success", "success"]
    assert view.logs[-1].completed_at == T0 + 5.0


def test_failed_run_carries_its_error_on_the_run_and_the_last_node() -> None:
    view = run_view(plan("failed", error="Mailbox unavailable"), T0 + 5.0)
    assert view.status == "failed"
    assert view.error == "Mailbox unavailable"
    assert [n.status for n in view.logs] == ["success", "success", "error"]
    assert view.logs[-1].error == "Mailbox unavailable"


def test_partially_completed_run_skips_its_last_node() -> None:
    view = run_view(plan("partially_completed"), T0 + 5.0)
    assert [n.status for n in view.logs] == ["success", "success", "skipped"]
    assert view.error is None


def test_cancel_while_running_wins_over_a_later_completion() -> None:
    p = plan("failed", error="late")
    view = run_view(p, T0 + 100.0, canceled_at=T0 + 2.0)
    assert view.status == "canceled"
    assert view.completed_at == T0 + 2.0
    assert view.error is None
    assert [(n.node_id, n.status) for n in view.logs] == [("trg", "success"), ("wait", "skipped")]
    assert view.logs[-1].completed_at == T0 + 2.0


def test_cancel_while_pending_never_starts() -> None:
    view = run_view(plan(), T0 + 100.0, canceled_at=T0 + 0.5)
    assert view.status == "canceled"
    assert view.started_at is None
    assert view.logs == ()


def test_cancel_after_the_end_changes_nothing() -> None:
    assert run_status(plan(), T0 + 9.0, canceled_at=T0 + 8.0) == "completed"


def test_pending_longer_than_duration_is_clipped() -> None:
    p = plan(pending_seconds=10.0, duration_seconds=2.0)
    assert run_status(p, T0 + 1.0) == "pending"
    assert run_status(p, T0 + 2.0) == "completed"
    assert run_view(p, T0 + 2.0).started_at == T0 + 2.0
