"""Stopping within shutdown.grace_seconds: fires not sent are let go at once, fires on
the wire are awaited (until the grace period ends), nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from delivery_support import (
    all_ended,
    automation,
    bridge_config,
    eventually,
    fires_by_key,
    outbox_view,
    queue,
    running_worker,
    seed,
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import BridgeConfig, RateLimit, RateLimitsConfig
from brew_bridge.config.sections import ShutdownConfig
from brew_bridge.core.ratelimit import BudgetClosed, RateBudgets
from brew_bridge.testing.simulator import running_simulator

TRIGGERS = {"tri_welcome": trigger(automation("auto_welcome", ms=200))}
LIFTED = {"fire": RateLimit(limit=200, window_seconds=5)}


def _batch(n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        ("welcome", "tri_welcome", f"welcome:{i}", {"email": f"u{i}@example.com"}) for i in range(n)
    ]


def _with_grace(config: BridgeConfig, seconds: float) -> BridgeConfig:
    return config.model_copy(update={"shutdown": ShutdownConfig(grace_seconds=seconds)})


def _rows(config: BridgeConfig, n: int) -> list[Any]:
    outbox = outbox_view(config)
    try:
        rows = [outbox.delivery(i) for i in range(1, n + 1)]
    finally:
        outbox.close()
    assert all(row is not None for row in rows)
    return rows


def _accepted_once_each(sim: Any, n: int) -> None:
    """Brew started one set of runs per key, and the last fire of each key was accepted."""
    assert sim_runs_by_email(sim) == {f"u{i}@example.com": 1 for i in range(n)}
    fires = fires_by_key(sim)
    assert sorted(fires) == sorted(f"welcome:{i}" for i in range(n))
    assert all(entries[-1]["status"] == 200 for entries in fires.values())


# -- the budget's switch -----------------------------------------------------------------


async def test_closing_a_budget_lets_its_waiters_go_at_once_and_takes_no_slot() -> None:
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=1, window_seconds=60)),
        clock=time.monotonic,
    )
    granted = await budgets.reserve("fire")  # the one slot: on the wire, untouched by close

    async def wait_for_a_slot() -> str:
        try:
            await budgets.reserve("fire")
        except BudgetClosed:  # what a caller sees (a task it escapes from ends cancelled)
            return "closed"
        return "granted"

    waiters = [asyncio.create_task(wait_for_a_slot()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters), "a saturated budget makes them wait"
    began = time.monotonic()
    budgets.close("fire")
    await asyncio.wait(waiters, timeout=1.0)
    assert time.monotonic() - began < 0.5
    assert [w.result() for w in waiters] == ["closed"] * 3
    with pytest.raises(BudgetClosed):
        await budgets.reserve("fire")  # and every later one
    assert budgets.closed("fire")
    window = budgets.window("fire")
    assert window.last_grant == granted.grant == 1, "no slot was taken by a closed wait"
    budgets.observe("fire", None, grant=granted.grant)  # the granted one settles as usual
    # Other policies go on: the poller's reads are not fires.
    assert not budgets.closed("run_read")
    assert (await budgets.reserve("run_read")).grant == 1


async def test_budget_closed_passes_through_except_exception() -> None:
    """Target code between the budget and the dispatcher that translates errors with
    ``except Exception`` cannot turn "not sent, stopping" into a fire failure."""
    budgets = RateBudgets(RateLimitsConfig())
    budgets.close("fire")
    caught: list[BaseException] = []
    try:
        try:
            await budgets.reserve("fire")
        except Exception as exc:  # what the test is about
            caught.append(exc)
    except BudgetClosed:
        pass
    assert caught == []


# -- a real worker against the simulator ---------------------------------------------


async def test_stop_releases_fires_waiting_for_the_budget_within_the_grace_period(
    tmp_path: Path,
) -> None:
    n = 50
    grace = 3.0
    with running_simulator(seed(TRIGGERS)) as sim:
        # Two fires a minute: 48 rows wait for a slot that frees in a minute. A request
        # timeout of 10 s: yesterday's stop waited timeout + 5 s for them, then cut them off.
        config = _with_grace(
            bridge_config(
                tmp_path,
                sim,
                brew={"timeout_seconds": 10.0},
                limits={"fire": RateLimit(limit=2, window_seconds=60)},
            ),
            grace,
        )
        queue(config, _batch(n))
        async with running_worker(config) as worker:
            await eventually(
                lambda: len(fires_by_key(sim)) == 2 and worker.in_flight >= 8,
                what="two fires sent and the rest waiting for the budget",
            )
            await asyncio.sleep(0.3)  # well into the wait
            began = time.monotonic()
        stopped_in = time.monotonic() - began
        sent = fires_by_key(sim)

    assert stopped_in < grace, f"the stop took {stopped_in:.2f} s, the grace period is {grace} s"
    assert stopped_in < 1.5, f"nothing was on the wire, yet the stop took {stopped_in:.2f} s"
    assert len(sent) == 2
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(time.time())
        assert stats.deliveries["fired"] == 2
        assert stats.deliveries["firing"] == 0
        assert stats.backlog + stats.deliveries["fired"] == n
        assert outbox.dead_letters() == []
    finally:
        outbox.close()
    rows = _rows(config, n)
    fired = {row.idempotency_key for row in rows if row.state == "fired"}
    assert fired == set(sent)
    for row in rows:
        if row.state != "fired":  # let go before it was sent: no attempt counted
            assert row.state == "pending", row
            assert row.attempts == 0, row
            assert row.first_attempt_at is None, row
            assert row.last_error is None, row

    # Started again with the budget lifted: every row fires, each key exactly once.
    with running_simulator(seed(TRIGGERS)) as sim:
        config = bridge_config(tmp_path, sim, limits=LIFTED)
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="every delivery and run to end")
        fires = fires_by_key(sim)
        assert sorted(fires) == sorted(
            f"welcome:{i}" for i in range(n) if f"welcome:{i}" not in sent
        )
        assert all(len(entries) == 1 and entries[0]["status"] == 200 for entries in fires.values())
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(time.time())
        assert stats.deliveries["fired"] == n
        assert outbox.dead_letters() == []
    finally:
        outbox.close()


async def test_a_fire_on_the_wire_at_stop_is_awaited_and_recorded(tmp_path: Path) -> None:
    faults = {"fire": {"next": [{"fault": "latency", "ms": 1200}]}}
    with running_simulator(seed(TRIGGERS, faults=faults)) as sim:
        config = _with_grace(bridge_config(tmp_path, sim), 5.0)
        queue(config, _batch(1))
        async with running_worker(config) as worker:
            await eventually(lambda: worker.in_flight == 1, what="the fire to start")
            await asyncio.sleep(0.3)  # granted at once (an empty budget): on the wire
            began = time.monotonic()
        stopped_in = time.monotonic() - began
        _accepted_once_each(sim, 1)
        assert len(fires_by_key(sim)["welcome:0"]) == 1
    assert 0.5 < stopped_in < 5.0, f"the stop took {stopped_in:.2f} s"
    [row] = _rows(config, 1)
    assert row.state == "fired", "a fire that was sent is awaited, not released as unsent"
    assert row.attempts == 1


async def test_a_fire_unanswered_at_the_end_of_the_grace_period_fires_again_next_start(
    tmp_path: Path,
) -> None:
    grace = 1.5
    # Brew does the work, then holds the answer far past the grace period.
    faults = {"fire": {"next": [{"fault": "hangAfterWork", "seconds": 6}]}}
    with running_simulator(seed(TRIGGERS, faults=faults)) as sim:
        config = _with_grace(bridge_config(tmp_path, sim, brew={"timeout_seconds": 20.0}), grace)
        queue(config, _batch(1))
        async with running_worker(config) as worker:
            await eventually(lambda: worker.in_flight == 1, what="the fire to start")
            await asyncio.sleep(0.3)
            began = time.monotonic()
        stopped_in = time.monotonic() - began
        assert stopped_in < grace + 0.5, f"the stop took {stopped_in:.2f} s"
        [row] = _rows(config, 1)
        assert row.state == "pending", "cut off at the end of the grace period: released"
        assert row.attempts == 0

        # Next start: the same key again; Brew answers with the run it started.
        config = bridge_config(tmp_path, sim, limits=LIFTED)
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="the delivery and its run to end")
        _accepted_once_each(sim, 1)
        assert len(fires_by_key(sim)["welcome:0"]) == 2
    [row] = _rows(config, 1)
    assert row.state == "fired"
