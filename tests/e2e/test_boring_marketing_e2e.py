"""End to end with Boring Marketing: events -> a route with ``target: growth`` ->
the SQLite outbox on disk -> the real worker's Boring Marketing lane -> the simulator
over HTTP on loopback -> every run followed to its end -> dead letters, /metrics, the
result topic.

The worker runs in-process (delivery_support.running_worker) with the target's check
pace compressed (its poll interval settings); events come in over the webhook source.
One test runs ``brew-bridge run`` as a child process, from a real Kafka topic to the
result topic, at the document's own check pace. Nothing sleeps to let things settle:
every wait is ``eventually`` (or a deadline loop) on what the simulator, the outbox or
/metrics show.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml
from bm_e2e_support import (
    BRAND,
    DEFAULT_BRAND,
    KEY,
    OTHER_BRAND,
    OUTSIDER_KEY,
    ROUTE,
    SEED,
    SPARE_KEY,
    STAGES,
    TARGET,
    bm_config,
    cancels,
    dead_letters,
    deliveries,
    event,
    fires,
    key_of,
    list_reads,
    readyz,
    route,
    run_counts,
    runs_of,
    send,
)
from delivery_support import all_ended, eventually, metric, parse_metrics, running_worker, scrape
from e2e_support import BridgeProcess

from brew_bridge.config import BridgeConfig
from brew_bridge.testing.boring_marketing import (
    BoringMarketingSimulatorHandle,
    running_boring_marketing_simulator,
)
from brew_bridge.testing.kafka import BrokerHandle

LIVE = ("queued", "running")
CANCELED_AT_BM = "Run cancelled via API"  # the simulator's error of a canceled run


def masked(key: str) -> str:
    """How the simulator's request log shows the X-API-Key a request carried."""
    return f"bm_…{key[-4:]}"


async def sim_run(
    sim: BoringMarketingSimulatorHandle, check: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    """Wait until the simulator's runs pass ``check``; return them."""
    seen: list[list[dict[str, Any]]] = [[]]

    def passes() -> bool:
        seen[0] = sim.runs()
        return check(seen[0])

    await eventually(passes, what=what)
    return seen[0]


# -- 1. fire and follow ----------------------------------------------------------------


async def test_each_event_fires_one_analysis_followed_to_done_for_its_brand(
    tmp_path: Path,
) -> None:
    named, unnamed = event(1, BRAND), event(2, brand=None)
    with running_boring_marketing_simulator(SEED) as sim:
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, named, unnamed)
            await eventually(lambda: all_ended(config), what="both runs to end")
            ready = await readyz(worker)
            values = await scrape(worker)
        fired = fires(sim)
        sim_runs = sim.runs()

    assert ready.status_code == 200, ready.text
    # Exactly one POST per event, to the pipeline of the brand it names, else of the
    # target's brand_id; with KEY in X-API-Key (the only key it could be: it is the one
    # whose last four the log shows, and the simulator accepted it), and the rest of the
    # payload as the body.
    by_path = {f["path"]: f for f in fired}
    assert len(fired) == 2, fired
    assert set(by_path) == {f"/brands/{BRAND}/analyze", f"/brands/{DEFAULT_BRAND}/analyze"}
    for brand, body in ((BRAND, named), (DEFAULT_BRAND, unnamed)):
        sent = by_path[f"/brands/{brand}/analyze"]
        assert (sent["status"], sent["apiKey"], sent["fault"]) == (202, masked(KEY), None)
        assert sent["body"] == {"note": body["note"]}  # the brand is in the path only

    # The simulator took each through the six stages to done...
    assert len(sim_runs) == 2
    assert {r["brand_id"] for r in sim_runs} == {BRAND, DEFAULT_BRAND}
    for r in sim_runs:
        assert (r["kind"], r["status"], r["error"]) == ("full", "done", None)
        assert r["meta"] == {"current_stage": STAGES[-1]}
    # ...and the bridge followed each to its end, recorded against its event's delivery.
    recorded = runs_of(config, [r["id"] for r in sim_runs])
    assert set(recorded) == {r["id"] for r in sim_runs}
    rows = deliveries(config)
    for r in sim_runs:
        run = recorded[r["id"]]
        body = named if r["brand_id"] == BRAND else unnamed
        assert (run.status, run.ref, run.target, run.action) == (
            "completed",
            r["brand_id"],
            TARGET,
            "analyze",
        )
        assert (run.route, run.idempotency_key, run.event_id) == (ROUTE, key_of(body), body["id"])
        row = rows[key_of(body)]
        assert (row["state"], row["result_code"], row["attempts"]) == ("fired", "TRIGGERED", 1)
        assert row["id"] == run.delivery_id
    assert dead_letters(config) == []

    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 2
    assert metric(values, "brew_bridge_fires_total") == 2
    assert metric(values, "brew_bridge_runs_started_total", target=TARGET) == 2
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == 2
    assert metric(values, "brew_bridge_runs_terminal_total") == 2
    assert metric(values, "brew_bridge_dead_letters_total") == 0


async def test_a_failing_pipeline_is_a_run_failed_dead_letter_with_its_error(
    tmp_path: Path,
) -> None:
    error = "DataForSEO rate limit exceeded — retry in 60 seconds"
    body = event(1, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline(
            "analyze",
            {"queuedMs": 50, "stageMs": 100, "outcome": "failed", "failStage": STAGES[3]},
        )
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, body)
            await eventually(
                lambda: all_ended(config) and bool(dead_letters(config)),
                what="the failed run to be dead-lettered",
            )
            values = await scrape(worker)
        [sim_failed] = sim.runs()
        fired = fires(sim)

    assert [f["status"] for f in fired] == [202]
    assert (sim_failed["status"], sim_failed["error"]) == ("failed", error)
    assert sim_failed["meta"] == {"current_stage": STAGES[3]}
    [run] = runs_of(config, [sim_failed["id"]]).values()
    assert (run.status, run.idempotency_key) == ("failed", key_of(body))
    [dl] = dead_letters(config)
    assert (dl.stage, dl.reason, dl.code) == ("run", "run_failed", "failed")
    assert (dl.route, dl.idempotency_key, dl.run_id) == (ROUTE, key_of(body), sim_failed["id"])
    assert dl.message == error
    assert dl.details is not None
    assert dl.details["error"] == error
    assert dl.details["logs"] == [{"kind": "full", "stage": STAGES[3], "detail": None}]
    assert dl.record is not None  # the event as it came, for a redrive
    assert metric(values, "brew_bridge_dead_letters_total", stage="run", reason="run_failed") == 1
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="failed") == 1


# -- 2. list-mode polling ----------------------------------------------------------------


async def test_many_runs_of_one_brand_are_settled_by_a_few_list_reads(
    tmp_path: Path,
) -> None:
    # Checks 3 s apart: the runs of eight events, one after the other (the brand takes one
    # run at a time), are all live in the outbox when their brand is first read.
    n = 8
    bodies = [event(i, BRAND) for i in range(n)]
    slow = {"pipeline_poll_interval_seconds": 3.0, "stage_poll_interval_seconds": 3.0}
    with running_boring_marketing_simulator(SEED) as sim:
        config = bm_config(tmp_path, sim, [route("brief")], target=slow)
        async with running_worker(config) as worker:
            for i, body in enumerate(bodies, 1):
                await send(worker, body)
                await sim_run(
                    sim,
                    lambda runs, i=i: len(runs) == i and runs[-1]["status"] == "done",
                    f"run {i} to be done at the simulator",
                )
            await eventually(lambda: all_ended(config), what="every run to be settled")
            values = await scrape(worker)
        sim_runs = sim.runs()
        reads = list_reads(sim)
        fired = fires(sim)

    assert [f["status"] for f in fired] == [202] * n  # one run each, none adopted
    recorded = runs_of(config, [r["id"] for r in sim_runs])
    assert [recorded[r["id"]].status for r in sim_runs] == ["completed"] * n
    # Polled one by one, each run would have cost at least one read; one list read of the
    # brand settled them all at once (two if the machine was slow to fire them).
    listed = metric(values, "brew_bridge_run_reads_total", target=TARGET, mode="list")
    assert 1 <= listed <= 2, listed
    assert listed == len(reads)
    assert {r["path"] for r in reads} == {f"/brands/{BRAND}/runs"}
    assert metric(values, "brew_bridge_run_reads_total", target=TARGET, mode="detail") == 0
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == n


# -- 3. 409: a run in progress is adopted -------------------------------------------------

SLOW_ANALYZE = {"queuedMs": 50, "stageMs": 300}  # about 1.9 s: time for a second event


@dataclass
class Shared:
    """What came of two events for one brand, the second while the first one's run ran."""

    config: BridgeConfig
    rows: dict[str, dict[str, Any]]  # the outbox's deliveries by key
    fired: list[dict[str, Any]]  # the simulator's request log: the fires
    runs: list[dict[str, Any]]  # the simulator's runs
    values: dict[str, float]  # /metrics at the end


async def _second_event_while_the_first_runs(
    tmp_path: Path,
    pipeline: Mapping[str, Any] = SLOW_ANALYZE,
    *,
    settled: Callable[[BridgeConfig, BoringMarketingSimulatorHandle], bool] | None = None,
    stick: bool = False,
) -> Shared:
    """Event 1 starts an analysis of BRAND; event 2 for BRAND comes while it runs (then,
    with ``stick``, the run gets stuck). Waits until ``settled`` (default: all ended)."""
    first, second = event(1, BRAND), event(2, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", pipeline)
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, first)
            await eventually(
                lambda: deliveries(config)[key_of(first)]["state"] == "fired",
                what="the first event to be fired",
            )
            await send(worker, second)
            await eventually(
                lambda: deliveries(config)[key_of(second)]["state"] == "fired",
                what="the second event to be fired",
            )
            live = [r for r in sim.runs() if r["status"] in LIVE]
            assert len(live) == 1, "the first run ended before the second event came"
            if stick:
                sim.stick(live[0]["id"])
            await eventually(
                lambda: settled(config, sim) if settled is not None else all_ended(config),
                what="the run to end",
            )
            values = await scrape(worker)
        return Shared(config, deliveries(config), fires(sim), sim.runs(), values)


async def test_a_second_event_while_the_brand_runs_adopts_that_run(tmp_path: Path) -> None:
    shared = await _second_event_while_the_first_runs(tmp_path)
    config, values = shared.config, shared.values
    first, second = shared.rows[key_of(event(1))], shared.rows[key_of(event(2))]

    # Two POSTs, the second answered 409: one run at Boring Marketing, not two.
    assert [(f["path"], f["status"]) for f in shared.fired] == [
        (f"/brands/{BRAND}/analyze", 202),
        (f"/brands/{BRAND}/analyze", 409),
    ]
    [the_run] = shared.runs
    assert the_run["status"] == "done"
    assert (first["state"], first["result_code"]) == ("fired", "TRIGGERED")
    assert (second["state"], second["result_code"]) == ("fired", "ADOPTED")
    assert (second["attempts"], second["last_error"]) == (1, None)  # not an error
    # The run is both deliveries' run, followed once to its end for both.
    assert run_counts(config, first["id"]) == {"completed": 1}
    assert run_counts(config, second["id"]) == {"completed": 1}
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="ADOPTED") == 1
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 1
    assert metric(values, "brew_bridge_fire_retries_total") == 0


def _two_dead_letters(config: BridgeConfig, _sim: BoringMarketingSimulatorHandle) -> bool:
    return all_ended(config) and len(dead_letters(config)) >= 2


async def test_a_shared_run_that_fails_is_dead_lettered_for_each_delivery(tmp_path: Path) -> None:
    failing = {**SLOW_ANALYZE, "outcome": "failed", "failStage": STAGES[2]}
    shared = await _second_event_while_the_first_runs(tmp_path, failing, settled=_two_dead_letters)
    [the_run] = shared.runs
    assert the_run["status"] == "failed"
    dead = {dl.idempotency_key: dl for dl in dead_letters(shared.config)}
    assert set(dead) == {key_of(event(1)), key_of(event(2))}
    for key, dl in dead.items():
        assert (dl.reason, dl.run_id, dl.delivery_id) == (
            "run_failed",
            the_run["id"],
            shared.rows[key]["id"],
        )
        assert dl.message == the_run["error"]


def _two_runs_ended(config: BridgeConfig, sim: BoringMarketingSimulatorHandle) -> bool:
    return all_ended(config) and len(sim.runs()) == 2


async def test_a_stuck_shared_run_fires_each_delivery_again(tmp_path: Path) -> None:
    shared = await _second_event_while_the_first_runs(tmp_path, stick=True, settled=_two_runs_ended)
    stuck, again = shared.runs
    assert (stuck["status"], stuck["error"]) == ("failed", CANCELED_AT_BM)
    assert again["status"] == "done"
    # Canceled once; both deliveries fired again: one started the new run, the other's
    # 409 adopted it.
    statuses = [f["status"] for f in shared.fired]
    assert len(statuses) == 4, shared.fired
    assert statuses[:2] == [202, 409]
    assert sorted(statuses[2:]) == [202, 409]
    for body in (event(1), event(2)):
        row = shared.rows[key_of(body)]
        assert run_counts(shared.config, row["id"]) == {"canceled": 1, "completed": 1}
    assert dead_letters(shared.config) == []
    assert metric(shared.values, "brew_bridge_stuck_runs_canceled_total", target=TARGET) == 1


async def test_each_dead_letter_of_a_shared_run_is_counted(tmp_path: Path) -> None:
    failing = {**SLOW_ANALYZE, "outcome": "failed", "failStage": STAGES[2]}
    shared = await _second_event_while_the_first_runs(tmp_path, failing, settled=_two_dead_letters)
    assert len(dead_letters(shared.config)) == 2
    assert metric(shared.values, "brew_bridge_dead_letters_total", reason="run_failed") == 2


async def test_a_shared_runs_end_is_on_the_result_topic_for_each_delivery(
    tmp_path: Path, broker: BrokerHandle
) -> None:
    uid = uuid.uuid4().hex[:8]
    topic, results_topic = f"brands-{uid}", f"bm-results-{uid}"
    for name in (topic, results_topic):
        broker.create_topic(name, partitions=1)
    kafka = {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": f"bridge-{uid}",
        "result_topic": results_topic,
        "poll_timeout_ms": 200,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
    }
    first, second = event(1, BRAND), event(2, BRAND)

    def produce(body: dict[str, Any]) -> None:
        broker.produce(topic, [json.dumps(body).encode()], keys=[body["id"].encode()])

    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", SLOW_ANALYZE)
        config = bm_config(
            tmp_path, sim, [route(webhooks=[], topics=[topic], id_path="event.id")], kafka=kafka
        )
        async with running_worker(config, consume=True) as worker:
            await asyncio.to_thread(produce, first)
            await eventually(
                lambda: deliveries(config).get(key_of(first), {}).get("state") == "fired",
                what="the first event to be fired",
            )
            await asyncio.to_thread(produce, second)
            await eventually(
                lambda: deliveries(config).get(key_of(second), {}).get("state") == "fired",
                what="the second event to be fired",
            )

            async def published() -> bool:
                values = await scrape(worker)
                return all_ended(config) and (
                    metric(values, "brew_bridge_kafka_publishes_total", topic_kind="result") >= 1
                )

            await eventually(published, within=30, what="the run's end on the result topic")
        [the_run] = sim.runs()
        rows = deliveries(config)

    assert [r["result_code"] for r in rows.values()] == ["TRIGGERED", "ADOPTED"]
    records = await asyncio.to_thread(broker.read, results_topic, 3, timeout=3)
    results = {json.loads(r.value)["eventId"]: json.loads(r.value) for r in records}
    assert set(results) == {first["id"], second["id"]}, results
    for body in (first, second):
        result = results[body["id"]]
        assert (result["runId"], result["status"]) == (the_run["id"], "completed")
        assert result["idempotencyKey"] == key_of(body)
        assert result["deliveryId"] == rows[key_of(body)]["id"]


async def test_a_run_someone_else_started_is_adopted_and_followed_as_the_deliverys(
    tmp_path: Path,
) -> None:
    body = event(1, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", SLOW_ANALYZE)
        # Someone else (another app, with its own key) starts an analysis of the brand.
        async with httpx.AsyncClient(base_url=sim.base_url) as outsider:
            started = await outsider.post(
                f"/brands/{BRAND}/analyze", headers={"X-API-Key": OUTSIDER_KEY}, json={}
            )
        assert started.status_code == 202, started.text
        theirs = started.json()["run_id"]
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, body)
            await eventually(lambda: all_ended(config), what="the adopted run to end")
            values = await scrape(worker)
        ours = fires(sim)[1:]
        sim_runs = sim.runs()

    assert [(f["status"], f["apiKey"]) for f in ours] == [(409, masked(KEY))]
    assert [(r["id"], r["status"]) for r in sim_runs] == [(theirs, "done")]  # no run of ours
    row = deliveries(config)[key_of(body)]
    assert (row["state"], row["result_code"], row["attempts"]) == ("fired", "ADOPTED", 1)
    [run] = runs_of(config, [theirs]).values()  # the delivery's run: followed to its end
    assert (run.delivery_id, run.status, run.ref) == (row["id"], "completed", BRAND)
    assert (run.idempotency_key, run.event_id) == (key_of(body), body["id"])
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="ADOPTED") == 1
    assert metric(values, "brew_bridge_runs_started_total", target=TARGET) == 1
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == 1


# -- 4. stuck runs -----------------------------------------------------------------------


async def test_a_stuck_run_is_canceled_at_boring_marketing_and_fired_again(
    tmp_path: Path,
) -> None:
    body = event(1, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", SLOW_ANALYZE)
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, body)
            [first] = await sim_run(
                sim, lambda runs: len(runs) == 1 and runs[0]["status"] in LIVE, "a live run"
            )
            sim.stick(first["id"])  # its stage_started_at stops moving
            await eventually(
                lambda: all_ended(config) and len(sim.runs()) == 2,
                what="the stuck run canceled, the event fired again and that run ended",
            )
            values = await scrape(worker)
        fired = fires(sim)
        canceled = cancels(sim)
        stuck, again = sim.runs()

    assert stuck["id"] == first["id"]
    assert [(c["path"], c["status"]) for c in canceled] == [
        (f"/brands/{BRAND}/runs/{first['id']}/cancel", 200)
    ]
    assert (stuck["status"], stuck["error"]) == ("failed", CANCELED_AT_BM)
    assert [f["status"] for f in fired] == [202, 202]  # fired again once the brand was free
    assert again["status"] == "done"
    recorded = runs_of(config, [stuck["id"], again["id"]])
    row = deliveries(config)[key_of(body)]
    assert {r.delivery_id for r in recorded.values()} == {row["id"]}
    assert recorded[stuck["id"]].status == "canceled"
    assert recorded[again["id"]].status == "completed"
    assert run_counts(config, row["id"]) == {"canceled": 1, "completed": 1}
    assert dead_letters(config) == []  # fired again, not given up on
    assert metric(values, "brew_bridge_stuck_runs_canceled_total", target=TARGET) == 1
    assert metric(values, "brew_bridge_run_reads_total", target=TARGET, mode="cancel") == 1
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="canceled") == 1
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == 1


@pytest.mark.parametrize("refires", [0, 1])
async def test_a_pipeline_stuck_every_time_is_dead_lettered_after_its_refires(
    tmp_path: Path, refires: int
) -> None:
    body = event(1, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", {"queuedMs": 50, "stageMs": 100, "outcome": "stuck"})
        config = bm_config(tmp_path, sim, target={"max_stuck_refires": refires})
        async with running_worker(config) as worker:
            await send(worker, body)
            await eventually(
                lambda: bool(dead_letters(config)) and all_ended(config),
                what="the last stuck run to be dead-lettered",
            )
            values = await scrape(worker)
        fired = fires(sim)
        canceled = cancels(sim)
        sim_runs = sim.runs()

    # 1 + max_stuck_refires runs, each canceled; then the event is given up on.
    assert [f["status"] for f in fired] == [202] * (1 + refires)
    assert len(sim_runs) == 1 + refires
    # Each stayed in its first stage until the bridge canceled it.
    assert [(r["status"], r["error"], r["meta"]) for r in sim_runs] == [
        ("failed", CANCELED_AT_BM, {"current_stage": STAGES[0]})
    ] * len(sim_runs)
    assert [c["path"] for c in canceled] == [
        f"/brands/{BRAND}/runs/{r['id']}/cancel" for r in sim_runs
    ]
    row = deliveries(config)[key_of(body)]
    assert row["state"] == "fired"  # not pending: nothing fires it again
    assert run_counts(config, row["id"]) == {"canceled": 1 + refires}
    [dl] = dead_letters(config)
    assert (dl.stage, dl.reason, dl.code) == ("run", "run_canceled", "canceled")
    assert (dl.idempotency_key, dl.run_id) == (key_of(body), sim_runs[-1]["id"])
    assert dl.message.startswith("stuck: no stage progress for "), dl.message
    assert f"in stage {STAGES[0]}" in dl.message
    assert dl.message.endswith("more than 1 s: canceled at Boring Marketing"), dl.message
    assert metric(values, "brew_bridge_stuck_runs_canceled_total", target=TARGET) == 1 + refires
    assert metric(values, "brew_bridge_fires_total", target=TARGET) == 1 + refires
    assert metric(values, "brew_bridge_dead_letters_total", stage="run", reason="run_canceled") == 1


# -- 5. stage progress as metrics ----------------------------------------------------------


def _stages_shown(values: dict[str, float], brand: str | None) -> list[str]:
    """The stages the gauge shows a live run in (by_brand: of ``brand``)."""
    if brand is None:
        name, labels = "brew_bridge_run_stages", {"target": TARGET}
    else:
        name, labels = "brew_bridge_run_stages_by_brand", {"target": TARGET, "brand": brand}
    return [s for s in STAGES if metric(values, name, stage=s, **labels) > 0]


@pytest.mark.parametrize("by_brand", [False, True], ids=["plain", "stage_brand_label"])
async def test_a_live_runs_stage_shows_in_the_stage_gauge(tmp_path: Path, by_brand: bool) -> None:
    body = event(1, BRAND)
    seen: list[str] = []
    seen_by_brand: list[str] = []
    samples: set[str] = set()
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("analyze", {"queuedMs": 50, "stageMs": 400})  # 2.45 s in all
        config = bm_config(tmp_path, sim, target={"stage_brand_label": by_brand})
        async with running_worker(config) as worker:
            await send(worker, body)

            async def ended_watching_stages() -> bool:
                values = await scrape(worker)
                samples.update(k for k in values if k.startswith("brew_bridge_run_stages"))
                for where, brand in ((seen, None), (seen_by_brand, BRAND)):
                    for stage in _stages_shown(values, brand):
                        if stage not in where:
                            where.append(stage)
                return all_ended(config)

            await eventually(ended_watching_stages, what="the run to end")
            values = await scrape(worker)
        [sim_done] = sim.runs()

    assert sim_done["status"] == "done"
    # Seen in one stage after another, in the pipeline's order.
    assert len(seen) >= 3, seen
    assert seen == sorted(seen, key=STAGES.index), seen
    # No brand id is a label of the plain gauge; by brand only when configured.
    plain = [k for k in samples if k.startswith("brew_bridge_run_stages{")]
    assert plain, samples
    assert [k for k in plain if "brand=" in k] == []
    branded = [k for k in samples if k.startswith("brew_bridge_run_stages_by_brand{")]
    if by_brand:
        assert seen_by_brand == seen
        assert all(f'brand="{BRAND}"' in k for k in branded), branded
    else:
        assert branded == []
        assert seen_by_brand == []
    # At its end no stage counts it; its by-brand series are gone.
    assert _stages_shown(values, None) == []
    assert metric(values, "brew_bridge_run_stages", target=TARGET) == 0
    assert [k for k in values if k.startswith("brew_bridge_run_stages_by_brand{")] == []


# -- 6. unknown outcome ------------------------------------------------------------------

# A fire Boring Marketing acted on whose answer never came: the connection reset after
# the work, or held past the target's 1 s timeout.
UNKNOWN_OUTCOMES = {
    "reset": {"fault": "reset"},
    "hang": {"fault": "hangAfterWork", "seconds": 3},
}


@pytest.mark.parametrize("fault", sorted(UNKNOWN_OUTCOMES))
async def test_an_unknown_outcome_is_fired_again_and_adopts_the_run_it_started(
    tmp_path: Path, fault: str
) -> None:
    body = event(1, BRAND)
    with running_boring_marketing_simulator(SEED) as sim:
        # 2.45 s: still running when the retry comes (after the 1 s timeout for a hang).
        sim.put_pipeline("analyze", {"queuedMs": 50, "stageMs": 400})
        sim.put_faults({"fire": {"next": [UNKNOWN_OUTCOMES[fault]]}})
        config = bm_config(tmp_path, sim)
        async with running_worker(config) as worker:
            await send(worker, body)
            await eventually(lambda: all_ended(config), what="the run to end")
            values = await scrape(worker)
        fired = fires(sim)
        sim_runs = sim.runs()

    # The first fire started the run, unheard; the retry's 409 named it.
    assert [f["fault"] for f in fired] == [UNKNOWN_OUTCOMES[fault]["fault"], None]
    assert fired[1]["status"] == 409
    [the_run] = sim_runs
    assert the_run["status"] == "done"
    row = deliveries(config)[key_of(body)]
    assert (row["state"], row["result_code"]) == ("fired", "ADOPTED")
    [run] = runs_of(config, [the_run["id"]]).values()
    assert (run.delivery_id, run.status) == (row["id"], "completed")
    assert run_counts(config, row["id"]) == {"completed": 1}
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="UNKNOWN_OUTCOME") == 1
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="ADOPTED") == 1
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 0
    assert metric(values, "brew_bridge_fire_retries_total", target=TARGET) == 1


# -- 7. a refused key --------------------------------------------------------------------


async def test_a_revoked_key_pauses_firing_until_a_good_key_is_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every URL
    key_file = tmp_path / "bm-key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    body = event(1, BRAND)
    texts: list[str] = []
    with (
        structlog.testing.capture_logs() as logged,
        # KEY was revoked at Boring Marketing (seeded so: no admin call names the key).
        running_boring_marketing_simulator(
            {**SEED, "keys": {**SEED["keys"], KEY: {"revoked": True}}}
        ) as sim,
    ):
        config = bm_config(
            tmp_path,
            sim,
            target={"api_key_file": str(key_file)},
            dispatcher={"idle_poll_seconds": 0.05, "auth_probe_seconds": 0.2},
        )
        async with running_worker(config) as worker:
            await send(worker, body)

            async def paused() -> bool:
                return (await readyz(worker)).status_code == 503

            await eventually(paused, what="/readyz to say firing is paused")
            # Paused, not failing: probes keep being refused, the event waits.
            await eventually(lambda: len(fires(sim)) >= 2, what="a probe after the first 401")
            refused = await readyz(worker)
            during = await scrape(worker)
            texts += [refused.text, str(deliveries(config))]
            # Waiting: pending, or firing while a probe (every 0.2 s) has it claimed.
            assert deliveries(config)[key_of(body)]["state"] in ("pending", "firing")
            assert dead_letters(config) == []

            key_file.write_text(SPARE_KEY + "\n", encoding="utf-8")  # the fix
            await eventually(lambda: all_ended(config), what="firing to resume and the run to end")
            ready = await readyz(worker)
            async with httpx.AsyncClient() as http:
                texts.append((await http.get(f"http://127.0.0.1:{worker.port}/metrics")).text)
            values = parse_metrics(texts[-1])
        fired = fires(sim)
        texts += [str(sim.requests()), str(dead_letters(config)), str(deliveries(config))]

    reasons = refused.json()["reasons"]
    assert refused.json()["ready"] is False
    assert "401" in reasons["circuit"], reasons
    assert "BM_API_KEY or targets.growth.api_key_file" in reasons["circuit"], reasons
    assert metric(during, "brew_bridge_circuit_open", target=TARGET) == 1
    assert metric(during, "brew_bridge_dead_letters_total") == 0
    # Refused with the revoked key until the file held the new one; then fired once.
    assert [(f["status"], f["apiKey"]) for f in fired[:-1]] == [(401, masked(KEY))] * (
        len(fired) - 1
    )
    assert (fired[-1]["status"], fired[-1]["apiKey"]) == (202, masked(SPARE_KEY))
    assert ready.status_code == 200, ready.text
    assert metric(values, "brew_bridge_circuit_open", target=TARGET) == 0
    row = deliveries(config)[key_of(body)]
    assert (row["state"], row["result_code"]) == ("fired", "TRIGGERED")
    assert run_counts(config, row["id"]) == {"completed": 1}
    assert dead_letters(config) == []
    # Neither key anywhere: log lines (before any redaction), stdlib logs, /readyz,
    # /metrics, the outbox's rows and dead letters, the simulator's request log.
    for where, text in [
        ("structlog", str(logged)),
        ("stdlib log", caplog.text),
        *(("bridge output", t) for t in texts),
    ]:
        for secret in (KEY, SPARE_KEY):
            assert secret not in text, f"an API key leaked into the {where}: {text[:300]}"
    assert logged, "no log line was captured"


# -- the real process: Kafka in, results out, the document's pace ------------------------


@pytest.mark.slow  # the document's pace: a run is first checked 5 s after its fire
def test_brew_bridge_run_follows_pipelines_from_kafka_to_the_result_topic(
    tmp_path: Path, broker: BrokerHandle
) -> None:
    uid = uuid.uuid4().hex[:8]
    topic, results_topic, dlq_topic = f"brands-{uid}", f"bm-results-{uid}", f"bm-dlq-{uid}"
    for name in (topic, results_topic, dlq_topic):
        broker.create_topic(name, partitions=1)
    briefed, scored = event(1, BRAND, type="brand.brief"), event(2, OTHER_BRAND, type="brand.score")
    unnamed = event(3, brand=None, type="brand.brief")
    bodies = [briefed, scored, unnamed]
    broker.produce(
        topic,
        [json.dumps(b).encode() for b in bodies],
        keys=[b["id"].encode() for b in bodies],
    )
    env = {"BM_API_KEY": KEY}
    error = "DataForSEO rate limit exceeded — retry in 60 seconds"
    with running_boring_marketing_simulator(SEED) as sim:
        sim.put_pipeline("score", {"queuedMs": 0, "stageMs": 50, "outcome": "failed"})
        doc = {
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": f"bridge-{uid}",
                "result_topic": results_topic,
                "dlq_topic": dlq_topic,
                "poll_timeout_ms": 200,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
            },
            "outbox": {"path": str(tmp_path / "outbox.db"), "synchronous": "NORMAL"},
            "poller": {"interval_seconds": 0.5},
            "server": {"host": "127.0.0.1", "port": 0},
            "logging": {"level": "DEBUG", "format": "json"},
            # As an operator writes it: the key from BM_API_KEY, the document's pace.
            "targets": {
                TARGET: {
                    "kind": "boring_marketing",
                    "base_url": sim.base_url,
                    "api_key_env": "BM_API_KEY",
                    "brand_id": DEFAULT_BRAND,
                }
            },
            "routes": [
                {
                    "name": f"bm-{pipeline}",
                    "topics": [topic],
                    "match": {"type": f"brand.{pipeline}"},
                    "target": TARGET,
                    "trigger": pipeline,
                    "payload": {"brand_id": "event.brand", "note": "event.note"},
                }
                for pipeline in ("brief", "score")
            ],
        }
        config_file = tmp_path / "bridge.yaml"
        config_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        bridge = BridgeProcess(["run", "--config", str(config_file)], env)
        try:
            port = bridge.wait_for_log("http server listening")["port"]

            def scraped() -> dict[str, float]:
                return parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics").text)

            deadline = time.monotonic() + 60
            while not (
                metric(scraped(), "brew_bridge_kafka_publishes_total", topic_kind="result")
                >= len(bodies)
                and metric(scraped(), "brew_bridge_kafka_publishes_total", topic_kind="dlq") >= 1
            ):
                assert bridge.proc.poll() is None, bridge.stderr[-3000:]
                assert time.monotonic() < deadline, "no result record for every run within 60 s"
                time.sleep(0.1)
            values = scraped()
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        finally:
            code = bridge.stop()
        sim_runs = {r["id"]: r for r in sim.runs()}
        fired = fires(sim)
        requests = sim.requests()

    assert code == 0, bridge.stderr[-3000:]
    assert ready.status_code == 200, ready.text
    assert sorted(f["path"] for f in fired) == sorted(
        [
            f"/brands/{BRAND}/brief",
            f"/brands/{OTHER_BRAND}/score",
            f"/brands/{DEFAULT_BRAND}/brief",
        ]
    )
    assert {(f["status"], f["apiKey"]) for f in fired} == {(202, masked(KEY))}
    # The document's pace: a single-stage run is first checked about 5 s after its fire,
    # and one list read per brand settles it.
    assert metric(values, "brew_bridge_run_reads_total", target=TARGET, mode="list") == 3
    assert len([r for r in requests if r["method"] == "GET"]) == 3
    results = [json.loads(r.value) for r in broker.read(results_topic, len(bodies), timeout=10)]
    assert {r["runId"] for r in results} == set(sim_runs)
    by_event = {r["eventId"]: r for r in results}
    assert set(by_event) == {b["id"] for b in bodies}
    for body in bodies:
        result = by_event[body["id"]]
        route_name = f"bm-{body['type'].removeprefix('brand.')}"
        assert (result["target"], result["route"]) == (TARGET, route_name)
        assert result["idempotencyKey"] == key_of(body, route_name)
    assert (by_event[briefed["id"]]["status"], by_event[briefed["id"]]["error"]) == (
        "completed",
        None,
    )
    assert by_event[unnamed["id"]]["status"] == "completed"
    assert (by_event[scored["id"]]["status"], by_event[scored["id"]]["error"]) == ("failed", error)
    # The failed run's dead letter on the DLQ topic: the event as it came, and why.
    [dead] = broker.read(dlq_topic, 1, timeout=10)
    assert json.loads(dead.value) == scored
    said = {name: value.decode() for name, value in dead.headers}
    assert (said["brew-bridge-reason"], said["brew-bridge-stage"]) == ("run_failed", "run")
    assert said["brew-bridge-message"] == error
    assert said["brew-bridge-idempotency-key"] == key_of(scored, "bm-score")
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET) == 3
    for text in (bridge.stderr, bridge.stdout, json.dumps(results), str(dead)):
        assert KEY not in text
