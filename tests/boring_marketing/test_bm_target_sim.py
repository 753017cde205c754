"""The Boring Marketing target against the simulator over real HTTP: fire, adopt, follow
runs on one list read per brand, cancel stuck runs, count stages, and never let the key out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import structlog
from bm_support import (
    BRAND,
    KEY,
    OTHER_BRAND,
    REVOKED_KEY,
    ManualClock,
    Slots,
    config,
    delivery,
    run_record,
)
from prometheus_client import generate_latest

from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import ApiError, AuthError, TargetError, UnknownOutcome
from brew_bridge.events import FireAccepted, RunRead
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import RunRecord
from brew_bridge.targets.boring_marketing import open_target
from brew_bridge.testing.boring_marketing import BoringMarketingSimulatorHandle
from brew_bridge.typing import Target

ANALYZE = 1 + 6 * 60  # the test seed's analyze: queued 1 s, then six stages of 60 s


@contextlib.asynccontextmanager
async def opened(
    sim: BoringMarketingSimulatorHandle,
    clock: ManualClock,
    *,
    key: str = KEY,
    metrics: Metrics | None = None,
    **settings: Any,
) -> AsyncIterator[Target]:
    """The target as the worker opens it, at the simulator."""
    section = config(sim.base_url, **{"timeout_seconds": 2.0, **settings})
    metrics = metrics if metrics is not None else Metrics()
    async with open_target(
        "growth",
        section,
        api_key=lambda: key,
        budgets=RateBudgets(section.rate_limits, metrics, target="growth"),
        metrics=metrics,
        clock=clock,
        routes=[],
    ) as target:
        yield target


async def polled(
    target: Target, runs: Sequence[RunRecord], now: float, reads: Slots
) -> list[RunRead]:
    return [seen async for batch in target.poll(runs, now, reads) for seen in batch]


def stage_gauge(metrics: Metrics, stage: str, brand: str | None = None) -> float | None:
    if brand is None:
        labels = {"target": "growth", "stage": stage}
        return metrics.registry.get_sample_value("brew_bridge_run_stages", labels)
    labels = {"target": "growth", "stage": stage, "brand": brand}
    return metrics.registry.get_sample_value("brew_bridge_run_stages_by_brand", labels)


async def test_a_fire_posts_the_payload_for_its_brand_and_records_the_brand(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        named = await target.fire(delivery("execute", {"brand_id": OTHER_BRAND, "format": "hub"}))
        clock.advance(3600)
        configured = await target.fire(delivery("enrich/brand", {"note": "hi"}))
    first, second = sim.requests()
    assert (first["method"], first["path"], first["body"]) == (
        "POST",
        f"/brands/{OTHER_BRAND}/execute",
        {"format": "hub"},  # the brand is in the path, not the body
    )
    assert first["apiKey"] == f"bm_…{KEY[-4:]}"  # sent in X-API-Key
    assert (second["path"], second["body"]) == (f"/brands/{BRAND}/enrich/brand", {"note": "hi"})
    (run_id,) = [r["id"] for r in sim.runs() if r["brand_id"] == OTHER_BRAND]
    assert named == FireAccepted(
        code="TRIGGERED",
        instance_id=None,
        run_ids=(run_id,),
        request_id=first["requestId"],
        ref=OTHER_BRAND,
    )
    assert configured.ref == BRAND


async def test_a_fire_while_the_brand_has_a_run_in_progress_adopts_that_run(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        first = await target.fire(delivery("analyze"))
        second = await target.fire(delivery("brief", delivery_id=2))
    assert (second.code, second.run_ids, second.ref) == ("ADOPTED", first.run_ids, BRAND)
    assert len(sim.runs()) == 1


async def test_a_fire_with_no_brand_or_no_pipeline_is_rejected_unsent(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    bad = [
        (delivery("analyze"), "BRAND_ID_REQUIRED", "the payload names no brand"),
        (delivery("analyze", {"brand_id": 42}), "BRAND_ID_REQUIRED", "the payload names no brand"),
        (delivery("nope"), "UNKNOWN_PIPELINE", "'nope' is not a Boring Marketing pipeline"),
    ]
    async with opened(sim, clock, brand_id=None) as target:
        for unfit, code, says in bad:
            with pytest.raises(ApiError) as refused:
                await target.fire(unfit)
            assert (refused.value.status, refused.value.code) == (0, code)
            assert says in refused.value.message
            assert target.classify(refused.value, unfit) is Disposition.REJECT
    assert sim.requests() == []


async def test_an_unknown_configured_brand_opens_the_gate_a_payloads_is_rejected(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock, brand_id="no-such-brand") as target:
        with pytest.raises(AuthError) as setup:
            await target.fire(delivery("analyze"))
        assert (setup.value.status, setup.value.code) == (404, "BRAND_NOT_FOUND")
        assert target.classify(setup.value, delivery()) is Disposition.AUTH
        hint = target.auth_hint(404, "BRAND_NOT_FOUND")
        assert "targets.growth.brand_id (no-such-brand)" in hint
        payloads = delivery("analyze", {"brand_id": "another-unknown"})
        with pytest.raises(ApiError) as event:
            await target.fire(payloads)
        assert not isinstance(event.value, AuthError)
        assert target.classify(event.value, payloads) is Disposition.REJECT


async def test_a_refused_key_is_an_auth_error_with_a_hint_naming_the_key_settings(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock, key=REVOKED_KEY) as target:
        with pytest.raises(AuthError) as refused:
            await target.fire(delivery())
        assert (refused.value.status, refused.value.message) == (401, "API key has been revoked")
        assert target.classify(refused.value, delivery()) is Disposition.AUTH
        hint = target.auth_hint(401, refused.value.code)
        assert "BM_API_KEY or targets.growth.api_key_file" in hint
    async with opened(sim, clock, key="  ") as target:
        with pytest.raises(AuthError) as missing:
            await target.fire(delivery())
        assert missing.value.code == "API_KEY_MISSING"
    assert len(sim.requests()) == 1  # an empty key is never sent


async def test_runs_are_followed_to_done_and_to_failed(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        fired_at = clock()
        full = run_record(await target.fire(delivery("analyze")), fired_at)
        reads = Slots()
        assert await polled(target, [full], clock() + 5, reads) == []  # not due yet
        assert reads.modes == []
        clock.advance(30)
        (running,) = await polled(target, [full], clock(), reads)
        assert (running.status, running.error) == ("running", None)
        clock.advance(ANALYZE)
        (done,) = await polled(target, [full], clock(), reads)
        assert (done.status, done.ended_at) == ("completed", fired_at + ANALYZE)
        assert done.logs == ({"kind": "full", "stage": "queue_building", "detail": None},)
        score = run_record(await target.fire(delivery("score", delivery_id=2)), clock())
        clock.advance(120)
        (failed,) = await polled(target, [score], clock(), reads)
        assert (failed.status, failed.error) == (
            "failed",
            "DataForSEO rate limit exceeded — retry in 60 seconds",
        )
    assert reads.modes == ["list", "list", "list"]


async def test_one_list_read_settles_every_run_of_a_brand(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    runs = []
    async with opened(sim, clock) as target:
        for i, endpoint in enumerate(["brief", "enrich/brand", "execute", "analyze"]):
            fired = await target.fire(delivery(endpoint, delivery_id=i))
            runs.append(run_record(fired, clock(), action=endpoint, delivery_id=i))
            clock.advance(60)  # the defaults: over in 1.2 s; analyze takes six minutes
        other = await target.fire(delivery("brief", {"brand_id": OTHER_BRAND}, delivery_id=9))
        runs.append(run_record(other, clock(), action="brief", delivery_id=9))
        clock.advance(30)
        reads = Slots()
        seen = await polled(target, runs, clock(), reads)
    assert reads.modes == ["list", "list"]  # one per brand
    statuses = {s.run_id: s.status for s in seen}
    assert statuses == {
        runs[0].run_id: "completed",
        runs[1].run_id: "completed",
        runs[2].run_id: "completed",
        runs[3].run_id: "running",
        runs[4].run_id: "completed",
    }


async def test_a_due_run_the_list_does_not_show_is_read_by_id_and_failed_when_unknown(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        gone = run_record(FireAccepted("TRIGGERED", None, ("no-such-run",), ref=BRAND), clock())
        clock.advance(30)
        reads = Slots()
        (seen,) = await polled(target, [gone], clock(), reads)
        assert reads.modes == ["list", "detail"]
        assert seen.status == "failed"
        assert seen.error is not None
        assert seen.error.startswith("Boring Marketing no longer knows run no-such-run")
        assert await target.read_run(gone, Slots(), logs=True) is None


async def test_a_stuck_run_is_canceled_and_reported_for_a_refire(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    sim.put_pipeline("brief", {"queuedMs": 500, "stageMs": 30_000, "outcomes": ["stuck", "done"]})
    metrics = Metrics()
    async with opened(sim, clock, metrics=metrics, stuck_after_seconds=900) as target:
        assert target.max_refires == 2  # max_stuck_refires' default
        run = run_record(await target.fire(delivery("brief")), clock(), action="brief")
        clock.advance(900)  # its stage started 0.5 s after the fire: 899.5 s without progress
        reads = Slots()
        (waiting,) = await polled(target, [run], clock(), reads)
        assert waiting.status == "running"
        clock.advance(1.5)
        (canceled,) = await polled(target, [run], clock(), reads)
        assert reads.modes == ["list", "list", "cancel"]
        assert (canceled.status, canceled.refire) == ("canceled", True)
        assert canceled.error is not None
        assert canceled.error.startswith("stuck: no stage progress for 901 s (in stage brief since")
        (at_sim,) = sim.runs()
        assert (at_sim["status"], at_sim["error"]) == ("failed", "Run cancelled via API")
        value = metrics.registry.get_sample_value(
            "brew_bridge_stuck_runs_canceled_total", {"target": "growth"}
        )
        assert value == 1
        again = await target.fire(delivery("brief"))  # the poller fires the event again
    assert again.code == "TRIGGERED"
    assert again.run_ids != (run.run_id,)


async def test_a_stuck_cancel_whose_answer_was_lost_is_still_a_refire(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    sim.put_pipeline("brief", {"queuedMs": 0, "stageMs": 30_000, "outcome": "stuck"})
    async with opened(sim, clock) as target:
        run = run_record(await target.fire(delivery("brief")), clock(), action="brief")
        clock.advance(1000)
        sim.put_faults({"read": {"next": [{"fault": "none"}, {"fault": "reset"}]}})
        with pytest.raises(UnknownOutcome):
            await polled(target, [run], clock(), Slots())
        clock.advance(10)
        (seen,) = await polled(target, [run], clock(), Slots())
    assert (seen.status, seen.refire) == ("canceled", True)
    assert sim.runs()[0]["error"] == "Run cancelled via API"


async def test_live_runs_are_counted_by_stage_without_brands_unless_asked(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    for brand_label in (False, True):
        sim.reset()
        sim.put_pipeline("enrich/brand", {"queuedMs": 0, "stageMs": 600_000})
        metrics = Metrics()
        async with opened(sim, clock, metrics=metrics, stage_brand_label=brand_label) as target:
            full = run_record(await target.fire(delivery("analyze")), clock())
            enrich = await target.fire(delivery("enrich/brand", {"brand_id": OTHER_BRAND}))
            runs = [full, run_record(enrich, clock(), action="enrich/brand", delivery_id=2)]
            clock.advance(1 + 2 * 60 + 5)  # analyze in family_discovery
            await polled(target, runs, clock(), Slots())
            assert stage_gauge(metrics, "family_discovery") == 1
            assert stage_gauge(metrics, "brand_enrichment") == 1
            by_brand = stage_gauge(metrics, "family_discovery", BRAND)
            assert by_brand == (1 if brand_label else None)
            clock.advance(ANALYZE)
            await polled(target, runs, clock(), Slots())
            assert stage_gauge(metrics, "family_discovery") == 0
            assert stage_gauge(metrics, "family_discovery", BRAND) is None  # removed
            assert stage_gauge(metrics, "brand_enrichment", OTHER_BRAND) == (
                1 if brand_label else None
            )
            await polled(target, runs[1:2], clock() + 10, Slots())  # analyze left the live set
            assert stage_gauge(metrics, "brand_enrichment") == 1
        if not brand_label:
            assert "brand=" not in generate_latest(metrics.registry).decode()


async def test_cancel_marks_a_live_run_failed_and_answers_409_for_a_finished_one(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        run = run_record(await target.fire(delivery("analyze")), clock())
        clock.advance(30)
        await target.cancel(run, "no end within 60 s")
        assert sim.runs()[0]["status"] == "failed"
        with pytest.raises(ApiError) as ended:
            await target.cancel(run, "again")
        assert (ended.value.status, ended.value.code) == (409, "RUN_NOT_CANCELLABLE")
        seen = await target.read_run(run, Slots(), logs=True)
        assert seen is not None
        assert (seen.status, seen.error) == ("failed", "Run cancelled via API")
        assert await target.find_runs(delivery(), 0, clock()) is None


async def test_what_got_no_answer_is_retried_and_the_retry_adopts_the_run_it_started(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "error", "status": 503}, {"fault": "reset"}]}})
    async with opened(sim, clock) as target:
        outcomes: list[TargetError] = []
        for _ in range(2):
            with pytest.raises(TargetError) as failed:
                await target.fire(delivery())
            outcomes.append(failed.value)
            assert target.classify(failed.value, delivery()) is Disposition.RETRY
        assert isinstance(outcomes[0], ApiError)
        assert outcomes[0].status == 503
        assert isinstance(outcomes[1], UnknownOutcome)
        retried = await target.fire(delivery())
    (started,) = sim.runs()
    assert (retried.code, retried.run_ids) == ("ADOPTED", (started["id"],))


async def test_a_refused_key_ends_the_poll_with_an_auth_error(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock
) -> None:
    async with opened(sim, clock) as target:
        run = run_record(await target.fire(delivery()), clock())
    clock.advance(30)
    async with opened(sim, clock, key=REVOKED_KEY) as revoked:
        with pytest.raises(AuthError):
            await polled(revoked, [run], clock(), Slots())


async def test_the_key_reaches_no_error_log_metric_or_run_read(
    sim: BoringMarketingSimulatorHandle, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every URL at INFO
    sim.put_pipeline("brief", {"queuedMs": 0, "stageMs": 10_000, "outcomes": ["stuck", "failed"]})
    metrics = Metrics()
    texts: list[str] = []
    seen: list[RunRead] = []
    wrong = f"{KEY}x"
    with structlog.testing.capture_logs() as events:
        async with opened(sim, clock, metrics=metrics, timeout_seconds=0.3) as target:
            run = run_record(await target.fire(delivery("brief")), clock(), action="brief")
            clock.advance(1000)
            seen += await polled(target, [run], clock(), Slots())  # stuck: canceled
            second = run_record(await target.fire(delivery("brief")), clock(), action="brief")
            clock.advance(20)
            seen += await polled(target, [second], clock(), Slots())  # failed
            for fault in ({"fault": "error", "status": 500}, {"fault": "reset"}):
                sim.put_faults({"read": {"next": [fault]}})
                clock.advance(10)
                with pytest.raises(TargetError) as raised:
                    await polled(target, [run], clock(), Slots())
                texts += [str(raised.value), repr(raised.value)]
        for key in (wrong, REVOKED_KEY):
            async with opened(sim, clock, key=key) as refused:
                with pytest.raises(AuthError) as denied:
                    await refused.fire(delivery())
                texts += [str(denied.value), repr(denied.value), str(denied.value.envelope())]
    assert [s.status for s in seen] == ["canceled", "failed"]
    for where, text in [
        *(("error", t) for t in texts),
        ("structlog", str(events)),
        ("stdlib log", caplog.text),
        ("metrics", generate_latest(metrics.registry).decode()),
        ("run reads", repr(seen)),
        ("simulator's request log", str(sim.requests())),
    ]:
        for secret in (KEY, wrong, REVOKED_KEY):
            assert secret not in text, f"an API key leaked into the {where}: {text[:300]}"
