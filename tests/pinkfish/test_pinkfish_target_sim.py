"""The Pinkfish target against the simulator over real HTTP: fire, follow to every end,
classify what went wrong, and never let the API key out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import structlog
from pinkfish_support import (
    KEY,
    OTHER_KEY,
    REVOKED_KEY,
    ManualClock,
    Slots,
    assert_shape,
    delivery,
    fixture,
    run_of,
)
from prometheus_client import generate_latest

from brew_bridge.config import RouteConfig
from brew_bridge.config.targets import PinkfishConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import ApiError, AuthError, RateLimited, TargetError, UnknownOutcome
from brew_bridge.events import FireAccepted, RunRead
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import RunRecord
from brew_bridge.targets.pinkfish import open_target
from brew_bridge.testing.pinkfish import PinkfishSimulatorHandle
from brew_bridge.typing import Target


def route(name: str = "research", **extra: Any) -> RouteConfig:
    return RouteConfig.model_validate(
        {
            "name": name,
            "topics": ["requests"],
            "target": "research",
            "trigger": "trg_hello",
            "payload": {"user_request": "event.text"},
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def opened(
    sim: PinkfishSimulatorHandle,
    clock: ManualClock,
    *,
    key: str = KEY,
    routes: Sequence[RouteConfig] = (),
    metrics: Metrics | None = None,
    **settings: Any,
) -> AsyncIterator[Target]:
    """The target as the worker opens it, at the simulator; polls every second."""
    config = PinkfishConfig.model_validate(
        {
            "kind": "pinkfish",
            "base_url": sim.base_url,
            "timeout_seconds": 2.0,
            "poll_interval_seconds": 1.0,
            **settings,
        }
    )
    metrics = metrics if metrics is not None else Metrics()
    async with open_target(
        "research",
        config,
        api_key=lambda: key,
        budgets=RateBudgets(config.rate_limits, metrics, target="research"),
        metrics=metrics,
        clock=clock,
        routes=routes,
    ) as target:
        yield target


async def polled(
    target: Target, runs: Sequence[RunRecord], now: float, reads: Slots
) -> list[RunRead]:
    return [seen async for shown in target.poll(runs, now, reads) for seen in shown]


def paths(sim: PinkfishSimulatorHandle) -> list[str]:
    return [f"{r['method']} {r['path'].rsplit('/', 1)[-1]}" for r in sim.requests()]


# -- fire ---------------------------------------------------------------------------------


async def test_fire_sends_the_payload_and_follows_the_run_by_its_automation(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        fired = await target.fire(delivery(payload={"user_request": "summarize", "n": 3}))
    (run,) = sim.runs()
    assert fired == FireAccepted(
        code="TRIGGERED",
        instance_id=None,
        run_ids=(run["runId"],),
        request_id=fired.request_id,
        ref="d831ue4rccbc73knbi80",
    )
    (logged,) = sim.requests()
    assert (logged["path"], logged["apiWait"], logged["requestId"]) == (
        "/ext/triggers/trg_hello",
        "false",
        fired.request_id,
    )
    assert logged["body"] == {"user_request": "summarize", "n": 3}


async def test_every_http_request_is_counted_by_target_and_endpoint(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    metrics = Metrics()
    async with opened(sim, clock, metrics=metrics) as target:
        run = run_of(await target.fire(delivery()), clock())
        clock.advance(5.0)
        await polled(target, [run], clock(), Slots())
    for endpoint in ("trigger", "run_status", "run_results"):
        labels = {"target": "research", "endpoint": endpoint, "status": "200"}
        assert metrics.registry.get_sample_value("brew_bridge_http_requests_total", labels) == 1


# -- follow -------------------------------------------------------------------------------


async def test_a_run_is_read_when_due_and_its_results_once_it_completes(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        run = run_of(await target.fire(delivery()), clock())
        reads = Slots()
        clock.advance(0.5)
        assert await polled(target, [run], clock(), reads) == []  # not due yet
        assert reads.modes == []
        clock.advance(0.5)
        (seen,) = await polled(target, [run], clock(), reads)
        assert (seen.status, seen.output) == ("running", None)
        clock.advance(1.0)
        (seen,) = await polled(target, [run], clock(), reads)
    assert seen.run_id == run.run_id
    assert seen.status == "completed"
    assert seen.error is None
    assert seen.output is not None
    assert_shape(seen.output, fixture("results_complete"))
    assert seen.output["id"] == run.run_id
    assert seen.logs == (
        {"step": "1", "name": "Step 1", "status": "COMPLETE", "executionOrder": 1},
    )
    assert reads.modes == ["detail"] * 3
    assert paths(sim) == ["POST trg_hello", "GET status", "GET status", "GET results"]


@pytest.mark.parametrize(
    ("trigger", "status", "step"),
    [("trg_steps", "failed", "3 (Send)"), ("trg_timeout", "timed_out", "1")],
)
async def test_a_bad_end_carries_what_the_dead_letter_needs(
    sim: PinkfishSimulatorHandle, clock: ManualClock, trigger: str, status: str, step: str
) -> None:
    async with opened(sim, clock) as target:
        run = run_of(await target.fire(delivery(trigger)), clock(), action=trigger)
        clock.advance(10.0)
        (seen,) = await polled(target, [run], clock(), Slots())
    assert seen.status == status
    assert seen.error is not None
    assert f"at step {step}" in seen.error
    assert seen.output is not None
    assert sorted(seen.output) == ["results", "stepInfo", "stepStatus"]
    assert_shape(seen.output["results"], fixture("results_complete"))
    assert seen.output["stepStatus"][step[0]] == ("FAILED" if status == "failed" else "TIMEOUT")


async def test_without_fetch_results_an_end_costs_no_second_read(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock, fetch_results=False) as target:
        run = run_of(await target.fire(delivery()), clock())
        clock.advance(5.0)
        (seen,) = await polled(target, [run], clock(), Slots())
    assert (seen.status, seen.output) == ("completed", None)
    assert paths(sim) == ["POST trg_hello", "GET status"]


async def test_read_run_reads_one_run_now_and_none_when_pinkfish_does_not_know_it(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        run = run_of(await target.fire(delivery()), clock())
        clock.advance(0.3)
        seen = await target.read_run(run, Slots(), logs=True)
        assert seen is not None
        assert (seen.status, seen.logs) == (
            "running",
            ({"step": "1", "name": "Step 1", "status": "RUNNING", "executionOrder": 1},),
        )
        sim.reset()  # the simulator forgets every run
        assert await target.read_run(run, Slots(), logs=True) is None
        clock.advance(5.0)
        assert await polled(target, [run], clock(), Slots()) == []  # stays live: read later
        assert await target.find_runs(delivery(), 0.0, clock()) is None
        with pytest.raises(TargetError, match="no cancel endpoint"):
            await target.cancel(run, "deadline")


async def test_a_stuck_run_is_read_as_running_on_every_due_check(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        run = run_of(await target.fire(delivery("trg_stuck")), clock(), action="trg_stuck")
        for _ in range(3):
            clock.advance(60.0)
            (seen,) = await polled(target, [run], clock(), Slots())
            assert seen.status == "running"


# -- what a failed fire means -------------------------------------------------------------


async def test_an_unknown_outcome_is_dead_lettered_unless_the_route_fires_again(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    routes = [route(), route("daily", on_unknown_outcome="fire_again")]
    async with opened(sim, clock, routes=routes) as target:
        sim.put_faults({"fire": {"next": [{"fault": "reset", "count": 2}]}})
        for name, disposition in (
            ("research", Disposition.UNKNOWN_OUTCOME),
            ("daily", Disposition.RETRY),
        ):
            with pytest.raises(UnknownOutcome) as raised:
                await target.fire(delivery(route=name))
            assert target.classify(raised.value, delivery(route=name)) is disposition
    assert len(sim.runs()) == 2  # both ran: why firing again is the route's call


async def test_a_fire_that_times_out_after_sending_is_an_unknown_outcome(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "hangAfterWork", "seconds": 30}]}})
    async with opened(sim, clock, timeout_seconds=0.3) as target:
        with pytest.raises(UnknownOutcome, match="timed out after the request was sent"):
            await target.fire(delivery())
    assert len(sim.runs()) == 1


@pytest.mark.parametrize(
    ("step", "error", "disposition"),
    [
        ({"fault": "error", "status": 503, "retryAfter": 2}, ApiError, Disposition.RETRY),
        ({"fault": "rateLimit", "retryAfter": 4}, RateLimited, Disposition.RETRY),
    ],
)
async def test_refusals_before_the_work_are_retried(
    sim: PinkfishSimulatorHandle,
    clock: ManualClock,
    step: dict[str, Any],
    error: type[ApiError],
    disposition: Disposition,
) -> None:
    sim.put_faults({"fire": {"next": [step]}})
    async with opened(sim, clock) as target:
        with pytest.raises(error) as raised:
            await target.fire(delivery())
    assert raised.value.retry_after == step["retryAfter"]
    assert target.classify(raised.value, delivery()) is disposition
    assert sim.runs() == []


async def test_an_unknown_trigger_is_rejected(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        with pytest.raises(ApiError) as raised:
            await target.fire(delivery("trg_nope"))
    assert (raised.value.status, raised.value.code) == (404, "TRIGGER_NOT_FOUND")
    assert target.classify(raised.value, delivery()) is Disposition.REJECT


async def test_a_refused_key_is_an_auth_error_on_fires_and_reads(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock, key=REVOKED_KEY) as revoked:
        with pytest.raises(AuthError) as raised:
            await revoked.fire(delivery())
        assert raised.value.code == "API_KEY_REVOKED"
        assert revoked.classify(raised.value, delivery()) is Disposition.AUTH
    async with opened(sim, clock) as target:
        run = run_of(await target.fire(delivery()), clock())
    clock.advance(5.0)
    async with opened(sim, clock, key="pf_key_nobody_knows_1") as wrong:
        with pytest.raises(AuthError, match="INVALID_API_KEY"):
            await polled(wrong, [run], clock(), Slots())
    async with opened(sim, clock, key=OTHER_KEY) as other:  # another account: not its run
        assert await polled(other, [run], clock(), Slots()) == []


async def test_no_key_is_an_auth_error_before_anything_is_sent(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock, key="  ") as target:
        with pytest.raises(AuthError) as raised:
            await target.fire(delivery())
    assert (raised.value.status, raised.value.code) == (401, "API_KEY_MISSING")
    assert sim.requests() == []


# -- the key in the polling URL -----------------------------------------------------------

READ_FAULTS = [
    {"fault": "hang", "seconds": 30},
    {"fault": "hangAfterWork", "seconds": 30},
    {"fault": "reset"},
    {"fault": "error", "status": 500},
    {"fault": "error", "status": 502, "body": "html"},
    {"fault": "errorAfterWork", "status": 503, "body": "empty"},
]


async def test_the_key_reaches_no_error_log_metric_or_run_read(
    sim: PinkfishSimulatorHandle, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every URL at INFO
    metrics = Metrics()
    texts: list[str] = []
    seen: list[RunRead] = []
    with structlog.testing.capture_logs() as events:
        async with opened(sim, clock, metrics=metrics, timeout_seconds=0.3) as target:
            run = run_of(await target.fire(delivery("trg_steps")), clock(), action="trg_steps")
            # Each fault strikes the status read, then (after a clean one) the results read.
            for step in READ_FAULTS:
                for script in ([step], [{"fault": "none"}, step]):
                    sim.put_faults({"read": {"next": script}})
                    clock.advance(10.0)
                    with pytest.raises(TargetError) as raised:
                        await polled(target, [run], clock(), Slots())
                    texts += [str(raised.value), repr(raised.value)]
                    if isinstance(raised.value, ApiError):
                        texts.append(str(raised.value.envelope()))
            sim.put_faults({})
            gone = run_of(FireAccepted("TRIGGERED", None, ("1",), ref=run.ref), clock())
            assert await target.read_run(gone, Slots(), logs=True) is None  # a 404
            seen += await polled(target, [run], clock(), Slots())
        async with opened(sim, clock, key=f"{KEY}_wrong") as wrong:
            with pytest.raises(AuthError) as refused:
                await polled(wrong, [run], clock(), Slots())
            texts += [str(refused.value), repr(refused.value), str(refused.value.envelope())]
    (ended,) = seen
    assert ended.status == "failed"
    assert "/ext/webhook/***/runs/" in caplog.text  # httpx's line is there, masked
    for where, text in [
        *(("error", t) for t in texts),
        ("structlog", str(events)),
        ("stdlib log", caplog.text),
        ("metrics", generate_latest(metrics.registry).decode()),
        ("run read", repr(ended)),
    ]:
        assert KEY not in text, f"the API key leaked into the {where}: {text[:300]}"


async def test_the_opener_yields_a_target_named_by_the_config_entry(
    sim: PinkfishSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        assert (target.name, target.title) == ("research", "Pinkfish")
    with pytest.raises(RuntimeError, match="closed"):  # the client is closed on exit
        await target.fire(delivery())
