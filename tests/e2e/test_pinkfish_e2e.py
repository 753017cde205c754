"""End to end with Pinkfish: events -> routes with ``target: research`` -> the SQLite
outbox on disk -> the real worker's Pinkfish lane -> the Pinkfish simulator over HTTP on
loopback -> every run followed to its end -> dead letters, /metrics, the result topic.

The worker runs in-process (delivery_support.running_worker); events come in over the
webhook source (pinkfish_e2e_support.send) or, where the result topic is needed, on a
real Kafka topic (the session's Tansu broker). Nothing sleeps to let things settle:
every wait is ``eventually`` with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from delivery_support import (
    SCHEMA,
    all_ended,
    automation,
    eventually,
    fires_by_key,
    metric,
    parse_metrics,
    running_worker,
    scrape,
    seed,
    trigger,
)
from pinkfish_e2e_support import (
    ACCOUNT,
    KEY,
    KINDS,
    SEED,
    SOURCE,
    TARGET,
    accepted,
    canonical,
    dead_letters,
    event,
    fires,
    mapped,
    outbox_stats,
    pinkfish_config,
    reads,
    readyz,
    routes,
    runs_of,
    send,
    sim_runs,
    trigger_of,
    waiting,
)
from structlog.testing import capture_logs

from brew_bridge.testing.kafka import BrokerHandle
from brew_bridge.testing.pinkfish import PinkfishSimulatorHandle, running_pinkfish_simulator
from brew_bridge.testing.simulator import running_simulator
from brew_bridge.worker import Worker

STATUS_OF = {trigger: status for _route, _type, trigger, status in KINDS.values()}


def _kafka(broker: BrokerHandle, uid: str, **over: Any) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": f"bridge-{uid}",
        "poll_timeout_ms": 200,
        # Tansu's group join takes about half the session timeout.
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 500,
        **over,
    }


async def _produce(broker: BrokerHandle, topic: str, *bodies: Mapping[str, Any]) -> None:
    await asyncio.to_thread(
        broker.produce,
        topic,
        [json.dumps(b).encode() for b in bodies],
        keys=[b["id"].encode() for b in bodies],
    )


async def test_each_event_fires_once_and_each_run_is_followed_to_its_pinkfish_end(
    tmp_path: Path,
) -> None:
    events = [event("summary", n) for n in range(3)] + [event("failing", 0), event("slow", 0)]
    with running_pinkfish_simulator(SEED) as pf:
        config = pinkfish_config(tmp_path, pf, routes("summary", "failing", "slow"))
        async with running_worker(config) as worker:
            await send(worker, *events)
            await eventually(lambda: all_ended(config), what="every event fired, every run ended")
            ready = await readyz(worker)
            values = await scrape(worker)
        fired = fires(pf)
        runs = sim_runs(pf)
        results_reads = reads(pf, "results")
        status_reads = reads(pf, "status")

    assert ready.status_code == 200, ready.text
    # Exactly one POST per event, accepted, async, with the route's mapped payload.
    assert len(fired) == len(events)
    assert all(f["status"] == 200 and f["fault"] is None for f in fired), fired
    assert {f["apiWait"] for f in fired} == {"false"}
    want = Counter((f"/ext/triggers/{trigger_of(e)}", canonical(mapped(e))) for e in events)
    assert Counter((f["path"], canonical(f["body"])) for f in fired) == want
    # The simulator knows only KEY: every run is its account's, so X-API-KEY carried it.
    assert len(runs) == len(events)
    assert {r["account"] for r in runs} == {ACCOUNT}

    # Every run the simulator started is the bridge's, followed to the end it reached.
    recorded = runs_of(config, [r["runId"] for r in runs])
    assert set(recorded) == {r["runId"] for r in runs}
    for sim_run in runs:
        run = recorded[sim_run["runId"]]
        assert run.target == TARGET
        assert run.ref == sim_run["automationId"]  # stored: it is part of the polling URL
        assert run.action == sim_run["triggerId"]
        assert run.status == STATUS_OF[sim_run["triggerId"]], (run, sim_run)
        assert run.idempotency_key.startswith(f"{run.route}:")
    assert Counter(r.status for r in recorded.values()) == {
        "completed": 3,
        "failed": 1,
        "timed_out": 1,
    }
    # Status reads until the end; then the results, once per run.
    assert results_reads == {r["runId"]: 1 for r in runs}
    assert all(status_reads[r["runId"]] >= 1 for r in runs)

    # The two bad ends are dead letters carrying what Pinkfish said of the run.
    dead = {dl.reason: dl for dl in dead_letters(config)}
    assert set(dead) == {"run_failed", "run_timed_out"}
    failed, timed_out = dead["run_failed"], dead["run_timed_out"]
    assert (failed.stage, failed.route, failed.idempotency_key) == (
        "run",
        "pf-research",
        "pf-research:failing-0",
    )
    assert failed.message == "Pinkfish run failed at step 3 (Send) (FAILED)"
    assert failed.details is not None
    output = failed.details["output"]
    assert output["stepStatus"] == {"1": "COMPLETE", "2": "COMPLETE", "3": "FAILED"}
    assert output["stepInfo"]["3"] == {"status": "FAILED", "name": "Send", "executionOrder": 3}
    assert output["results"]["status"] == "FAILED"
    assert [s["exitCode"] for s in output["results"]["results"]] == [0, 0, 1]
    assert [s["name"] for s in failed.details["logs"]] == ["Fetch", "Summarize", "Send"]

    assert (timed_out.stage, timed_out.route, timed_out.idempotency_key) == (
        "run",
        "pf-crawl",
        "pf-crawl:slow-0",
    )
    assert timed_out.message == (
        "Pinkfish stopped the run at step 1 (Crawl): it exceeded its execution time limit (TIMEOUT)"
    )
    assert timed_out.details is not None
    output = timed_out.details["output"]
    assert output["stepStatus"] == {"1": "TIMEOUT"}
    assert output["stepInfo"]["1"]["name"] == "Crawl"
    assert output["results"]["status"] == "TIMEOUT"
    assert [s["exitCode"] for s in output["results"]["results"]] == [124]

    # 7. The metrics say which target: fires and ends under target="research".
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 5
    assert metric(values, "brew_bridge_fires_total") == 5
    for status, n in {"completed": 3, "failed": 1, "timed_out": 1}.items():
        assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status=status) == n
    assert metric(values, "brew_bridge_runs_terminal_total") == 5
    assert metric(values, "brew_bridge_runs_started_total", target=TARGET) == 5
    assert metric(values, "brew_bridge_run_reads_total", target=TARGET, mode="detail") == sum(
        status_reads.values()
    ) + sum(results_reads.values())


async def test_a_completed_run_puts_its_results_on_the_result_topic(
    tmp_path: Path, broker: BrokerHandle
) -> None:
    uid = uuid.uuid4().hex[:8]
    topic, result_topic = f"research-{uid}", f"results-{uid}"
    for name in (topic, result_topic):
        broker.create_topic(name, partitions=1)
    events = [event("summary", 0), event("summary", 1), event("failing", 0)]
    await _produce(broker, topic, *events)
    with running_pinkfish_simulator(SEED) as pf:
        config = pinkfish_config(
            tmp_path,
            pf,
            routes("summary", "failing", webhooks=[], topics=[topic]),
            kafka=_kafka(broker, uid, result_topic=result_topic),
        )
        async with running_worker(config, consume=True) as worker:

            async def published() -> bool:
                values = await scrape(worker)
                return metric(
                    values, "brew_bridge_kafka_publishes_total", topic_kind="result"
                ) >= len(events)

            await eventually(published, within=60, what="a result record per run")
            values = await scrape(worker)
        runs = {r["runId"]: r for r in sim_runs(pf)}

    assert metric(values, "brew_bridge_kafka_publishes_total", topic_kind="result") == 3
    assert (
        metric(values, "brew_bridge_kafka_publishes_total", topic_kind="result", outcome="ok") == 3
    )
    records = await asyncio.to_thread(broker.read, result_topic, len(events))
    assert len(records) == sum(broker.end_offsets(result_topic).values()) == len(events)
    results = {json.loads(r.value)["runId"]: json.loads(r.value) for r in records}
    assert set(results) == set(runs)
    recorded = runs_of(config, list(runs))
    by_event = {r["eventId"]: r for r in results.values()}
    assert set(by_event) == {e["id"] for e in events}  # the Kafka event's own id, never null
    for result in results.values():
        run = recorded[result["runId"]]
        assert result["target"] == TARGET
        assert result["eventId"] is not None
        assert result["eventId"] == run.event_id
        assert (result["route"], result["idempotencyKey"]) == (run.route, run.idempotency_key)
        assert result["triggerEventId"] == runs[result["runId"]]["triggerId"]
    for n in (0, 1):
        done = by_event[f"summary-{n}"]
        assert done["status"] == "completed"
        assert done["error"] is None
        output = done["output"]  # the results read, as Pinkfish answered it
        assert output["id"] == done["runId"]
        assert output["status"] == "COMPLETE"
        assert output["automationId"] == runs[done["runId"]]["automationId"]
        assert [s["stepIndex"] for s in output["results"]] == [1, 2]
        assert output["designatedOutput"]["fileName"] == "summary.txt"
    failed = by_event["failing-0"]
    assert failed["status"] == "failed"
    assert failed["error"] == "Pinkfish run failed at step 3 (Send) (FAILED)"
    assert failed["output"]["stepStatus"]["3"] == "FAILED"
    assert failed["output"]["results"]["status"] == "FAILED"


# A fire Pinkfish acted on whose answer never came: the connection reset after the work,
# or held past the target's 1 s timeout.
UNKNOWN_OUTCOMES: dict[str, dict[str, Any]] = {
    "reset": {"fault": "reset"},
    "hang": {"fault": "hangAfterWork", "seconds": 4},
}


def _fires_of(pf: PinkfishSimulatorHandle, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [f for f in fires(pf) if f["body"] == mapped(body)]


@pytest.mark.parametrize("fault", sorted(UNKNOWN_OUTCOMES))
async def test_an_unknown_outcome_is_dead_lettered_and_never_fired_again(
    tmp_path: Path, fault: str
) -> None:
    first, second = event("summary", 0), event("summary", 1)
    with running_pinkfish_simulator(SEED) as pf:
        pf.put_faults({"fire": {"next": [UNKNOWN_OUTCOMES[fault]]}})
        config = pinkfish_config(tmp_path, pf, routes("summary"))
        async with running_worker(config) as worker:
            await send(worker, first)
            await eventually(
                lambda: bool(dead_letters(config)) and all_ended(config),
                what="the unknown outcome to be dead-lettered",
            )
            # The lane goes on: a later event fires and its run ends while the first one
            # stays dead (time enough for a wrong second fire of it to show).
            await send(worker, second)
            await eventually(
                lambda: all_ended(config) and len(fires(pf)) == 2,
                what="the second event's run to end",
            )
            values = await scrape(worker)
        first_fires, second_fires = _fires_of(pf, first), _fires_of(pf, second)
        runs = sim_runs(pf)

    assert len(first_fires) == 1, first_fires  # fired once, never again
    assert first_fires[0]["fault"] == UNKNOWN_OUTCOMES[fault]["fault"]
    assert [f["status"] for f in second_fires] == [200]
    assert len(runs) == 2  # Pinkfish did start the first event's workflow...
    recorded = runs_of(config, [r["runId"] for r in runs])
    assert len(recorded) == 1  # ...which the bridge never heard of
    [run] = recorded.values()
    assert run.idempotency_key == "pf-summary:summary-1"
    assert run.status == "completed"
    [dl] = dead_letters(config)
    assert (dl.stage, dl.reason, dl.code) == ("fire", "outcome_unknown", "UNKNOWN_OUTCOME")
    assert (dl.route, dl.idempotency_key) == ("pf-summary", "pf-summary:summary-0")
    assert "after the request was sent" in dl.message, dl.message
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="UNKNOWN_OUTCOME") == 1
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 1
    assert (
        metric(values, "brew_bridge_dead_letters_total", stage="fire", reason="outcome_unknown")
        == 1
    )


@pytest.mark.parametrize("fault", sorted(UNKNOWN_OUTCOMES))
async def test_a_route_that_allows_it_fires_an_unknown_outcome_again(
    tmp_path: Path, fault: str
) -> None:
    body = event("summary", 0)
    with running_pinkfish_simulator(SEED) as pf:
        pf.put_faults({"fire": {"next": [UNKNOWN_OUTCOMES[fault]]}})
        config = pinkfish_config(tmp_path, pf, routes("summary", on_unknown_outcome="fire_again"))
        async with running_worker(config) as worker:
            await send(worker, body)
            await eventually(
                lambda: all_ended(config) and len(fires(pf)) == 2,
                what="the second fire's run to end",
            )
            values = await scrape(worker)
        fired = _fires_of(pf, body)
        runs = sim_runs(pf)

    # Both did the work at Pinkfish (the log says 200); the first answer never came.
    assert [(f["fault"], f["status"]) for f in fired] == [
        (UNKNOWN_OUTCOMES[fault]["fault"], 200),
        (None, 200),
    ]
    # The workflow ran twice at Pinkfish (what the route accepted); the bridge follows the
    # run of the fire it heard about.
    assert len(runs) == 2
    recorded = runs_of(config, [r["runId"] for r in runs])
    assert [r.status for r in recorded.values()] == ["completed"]
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="UNKNOWN_OUTCOME") == 1
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 1
    assert metric(values, "brew_bridge_fire_retries_total", target=TARGET) == 1
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == 1


PROBE_SECONDS = 0.4


def _refused(pf: PinkfishSimulatorHandle) -> list[dict[str, Any]]:
    return [f for f in fires(pf) if f["status"] == 401]


def _wave_and_probes(pf: PinkfishSimulatorHandle) -> tuple[list[float], list[float]]:
    """When the refused fires came: the first ones, sent together before the first 401
    came back, and the probes after them."""
    times = sorted(f["at"] for f in _refused(pf))
    wave = [t for t in times if t - times[0] < PROBE_SECONDS / 2]
    return wave, times[len(wave) :]


def _probed(pf: PinkfishSimulatorHandle, probes: int) -> bool:
    return len(_wave_and_probes(pf)[1]) >= probes


async def _paused(worker: Worker, pf: PinkfishSimulatorHandle, probes: int = 3) -> str:
    """Wait until the Pinkfish lane has been refused and has probed ``probes`` times;
    /readyz's reason."""
    await eventually(lambda: _probed(pf, probes), what=f"the 401s and {probes} probes")
    ready = await readyz(worker)
    assert ready.status_code == 503, ready.text
    reason: str = ready.json()["reasons"]["circuit"]
    return reason


async def test_a_refused_key_pauses_firing_until_it_works_again_and_each_event_fires_once(
    tmp_path: Path,
) -> None:
    events = [event("summary", n) for n in range(4)]
    with running_pinkfish_simulator(SEED) as pf:
        pf.put_key(KEY, {"account": ACCOUNT, "revoked": True})
        config = pinkfish_config(
            tmp_path, pf, routes("summary"), dispatcher={"auth_probe_seconds": PROBE_SECONDS}
        )
        async with running_worker(config) as worker:
            await send(worker, *events)
            reason = await _paused(worker, pf)
            paused = await scrape(worker)
            stats = outbox_stats(config)
            backlog, attempts = waiting(config, TARGET)
            wave, probes = _wave_and_probes(pf)

            pf.put_key(KEY, {"account": ACCOUNT, "revoked": False})  # the key works again
            await eventually(
                lambda: all_ended(config) and len(accepted(pf)) == len(events),
                what="every event to fire and its run to end",
            )
            ready = await readyz(worker)
            values = await scrape(worker)
        fired = fires(pf)
        runs = sim_runs(pf)

    # Paused: readiness names the refusal and the fix, the target's key setting included.
    assert "Pinkfish answered 401 API_KEY_REVOKED" in reason, reason
    assert f"targets.{TARGET}.api_key_env" in reason
    assert "PINKFISH_API_KEY" in reason
    assert metric(paused, "brew_bridge_circuit_open", target=TARGET) == 1
    # Nothing dead-lettered; every event waits, no attempt spent on a refusal.
    assert backlog == len(events)
    assert attempts == [0] * len(events)
    assert (stats.deliveries["fired"], stats.deliveries["dead"], stats.dead_letters) == (0, 0, 0)
    # Paused means probing: after the first concurrent fires, one refused fire per interval.
    assert len(wave) <= len(events)
    gaps = [b - a for a, b in zip([wave[-1], *probes], probes, strict=False)]
    assert len(gaps) >= 3, (wave, probes)
    assert min(gaps) >= PROBE_SECONDS * 0.8, gaps

    # Resumed: each event accepted exactly once, each run followed to its end.
    assert ready.status_code == 200, ready.text
    ok = [f for f in fired if f["status"] == 200]
    assert Counter(canonical(f["body"]) for f in ok) == {canonical(mapped(e)): 1 for e in events}
    assert {f["status"] for f in fired} == {200, 401}
    recorded = runs_of(config, [r["runId"] for r in runs])
    assert len(runs) == len(events)
    assert [r.status for r in recorded.values()] == ["completed"] * len(events)
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_circuit_open", target=TARGET) == 0
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 4
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="API_KEY_REVOKED") == len(
        [f for f in fired if f["status"] == 401]
    )


def _signup(n: int) -> dict[str, Any]:
    return {"id": f"signup-{n}", "type": "user.signup", "user": {"email": f"new{n}@example.com"}}


BREW_ROUTE = {
    "name": "welcome",  # no target: Brew
    "trigger": "tri_welcome",
    "webhooks": [SOURCE],
    "match": {"type": "user.signup"},
    "payload": {"email": "event.user.email"},
}


async def test_a_pinkfish_refusal_pauses_only_its_own_lane_while_brew_keeps_firing(
    tmp_path: Path,
) -> None:
    pinkfish_events = [event("summary", n) for n in range(2)]
    with (
        running_simulator(
            seed({"tri_welcome": trigger(automation("auto_welcome", ms=300))})
        ) as brew,
        running_pinkfish_simulator(SEED) as pf,
    ):
        pf.put_key(KEY, {"account": ACCOUNT, "revoked": True})
        config = pinkfish_config(
            tmp_path,
            pf,
            [*routes("summary"), BREW_ROUTE],
            brew=brew,
            triggers={"tri_welcome": {"payload_schema": SCHEMA}},
            dispatcher={"auth_probe_seconds": PROBE_SECONDS},
        )

        async with running_worker(config) as worker:
            await send(worker, pinkfish_events[0], _signup(0), pinkfish_events[1], _signup(1))
            reason = await _paused(worker, pf)
            # Pinkfish is paused, and Brew fires and follows runs all the same: the ones
            # sent with the Pinkfish events and the ones sent while it is paused.
            await send(worker, _signup(2), _signup(3))
            await eventually(
                lambda: outbox_stats(config).runs_by_status.get("completed") == 4,
                what="the four Brew runs to end while the Pinkfish lane is paused",
            )
            during = await scrape(worker)
            pinkfish_waiting = waiting(config, TARGET)
            still_paused = await readyz(worker)

            pf.put_key(KEY, {"account": ACCOUNT, "revoked": False})
            await eventually(
                lambda: all_ended(config) and len(accepted(pf)) == 2,
                what="the Pinkfish events to fire and their runs to end",
            )
            values = await scrape(worker)
        brew_fires = fires_by_key(brew)
        pf_fires = accepted(pf)

    assert "Pinkfish answered 401 API_KEY_REVOKED" in reason, reason
    assert f"targets.{TARGET}.api_key_env" in reason
    assert "Brew" not in reason
    assert still_paused.status_code == 503
    assert pinkfish_waiting == (2, [0, 0])  # the Pinkfish events wait; nothing lost or dead
    assert metric(during, "brew_bridge_circuit_open", target=TARGET) == 1
    assert metric(during, "brew_bridge_circuit_open", target="brew") == 0
    assert metric(during, "brew_bridge_fires_total", target="brew", code="TRIGGERED") == 4
    assert metric(during, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 0
    assert metric(during, "brew_bridge_runs_terminal_total", target="brew", status="completed") == 4

    assert {k: [f["status"] for f in v] for k, v in brew_fires.items()} == {
        f"welcome:signup-{n}": [200] for n in range(4)
    }
    assert Counter(canonical(f["body"]) for f in pf_fires) == {
        canonical(mapped(e)): 1 for e in pinkfish_events
    }
    assert dead_letters(config) == []
    assert metric(values, "brew_bridge_fires_total", target=TARGET, code="TRIGGERED") == 2
    assert metric(values, "brew_bridge_runs_terminal_total", target=TARGET, status="completed") == 2
    assert metric(values, "brew_bridge_runs_terminal_total", target="brew", status="completed") == 4


def _rendered(entry: Mapping[str, Any]) -> str:
    """A captured structlog event as the JSON renderer would write it, before the
    redaction: the key must not be there to be redacted in the first place."""
    return json.dumps(dict(entry), default=repr)


# Faults on both sides while the held run is the only live one: refused and cut-off
# fires, and its status reads answered 500 (JSON, HTML, empty), reset, or held past the
# 1 s timeout.
MIXED_FAULTS = {
    "fire": {
        "next": [
            {"fault": "error", "status": 500},
            {"fault": "reset"},
            {"fault": "error", "status": 503, "body": "html"},
            {"fault": "error", "status": 502, "body": "empty"},
        ]
    },
    "read": {
        "next": [
            {"fault": "error", "status": 500},
            {"fault": "reset"},
            {"fault": "error", "status": 502, "body": "html"},
            {"fault": "error", "status": 504, "body": "empty"},
            {"fault": "hang", "seconds": 3},
        ]
    },
}
# For a run already COMPLETE when first read, alone: every read is a status read (fine)
# followed by a results read (failed), until the script runs out.
RESULTS_FAULTS = {
    "read": {
        "next": [
            {"fault": "none"},
            {"fault": "error", "status": 500},
            {"fault": "none"},
            {"fault": "reset"},
            {"fault": "none"},
            {"fault": "error", "status": 502, "body": "html"},
            {"fault": "none"},
            {"fault": "error", "status": 503, "body": "empty"},
        ]
    },
}


async def test_the_api_key_reaches_no_log_dead_letter_metric_record_or_cli_output(
    tmp_path: Path, broker: BrokerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every request's URL at INFO
    uid = uuid.uuid4().hex[:8]
    topic, result_topic, dlq_topic = f"research-{uid}", f"results-{uid}", f"dlq-{uid}"
    for name in (topic, result_topic, dlq_topic):
        broker.create_topic(name, partitions=1)
    kinds = ("held", "summary", "failing", "slow", "instant")
    first = [event("summary", n) for n in range(3)] + [event("failing", 0), event("slow", 0)]
    later = [event("summary", n) for n in range(3, 5)]
    pages: list[str] = []  # /metrics and /readyz as served
    with running_pinkfish_simulator(SEED) as pf:
        config = pinkfish_config(
            tmp_path,
            pf,
            routes(*kinds, webhooks=[], topics=[topic]),
            kafka=_kafka(broker, uid, result_topic=result_topic, dlq_topic=dlq_topic),
            dispatcher={"auth_probe_seconds": PROBE_SECONDS},
        )

        async def page(path: str) -> str:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{worker.port}{path}")).text
            pages.append(text)
            return text

        def requests(method: str, status: int) -> list[dict[str, Any]]:
            return [e for e in pf.requests() if (e["method"], e["status"]) == (method, status)]

        with capture_logs(processors=[structlog.processors.format_exc_info]) as logs:
            async with running_worker(config, consume=True) as worker:
                # 1. A run the bridge follows, held RUNNING at Pinkfish.
                await _produce(broker, topic, event("held", 0))
                await eventually(
                    lambda: reads(pf, "status") != {}, within=60, what="the held run's reads"
                )
                [held] = sim_runs(pf, "trg_held")
                # 2. Fires and reads fail in every way while events come and runs end.
                pf.put_faults(MIXED_FAULTS)
                await _produce(broker, topic, *first)

                async def only_held_live() -> bool:
                    stats = outbox_stats(config)
                    consumed = metric(await scrape(worker), "brew_bridge_events_consumed_total")
                    return (
                        consumed == 1 + len(first) and stats.backlog == 0 and stats.live_runs == 1
                    )

                await eventually(
                    only_held_live, what="every other event fired (or dead) and its run ended"
                )
                # 3. The key is revoked: the held run's reads (the key in their path) and
                # the next fires are refused.
                pf.put_faults({})
                pf.put_key(KEY, {"account": ACCOUNT, "revoked": True})
                await eventually(lambda: requests("GET", 401) != [], what="a refused read")
                await _produce(broker, topic, *later)
                await eventually(lambda: requests("POST", 401) != [], what="a refused fire")
                await page("/readyz")
                await page("/metrics")
                # 4. The key works again; the held run goes on; everything ends.
                pf.put_key(KEY, {"account": ACCOUNT, "revoked": False})
                pf.stick(held["runId"], stuck=False)

                await eventually(
                    lambda: (
                        all_ended(config) and sum(outbox_stats(config).runs_by_status.values()) == 7
                    ),
                    what="the held run and the later events' runs to end",
                )
                # 5. The results reads fail: 500s, a reset.
                pf.put_faults(RESULTS_FAULTS)
                await _produce(broker, topic, event("instant", 0))

                async def finished() -> bool:
                    values = parse_metrics(await page("/metrics"))
                    ended = metric(values, "brew_bridge_runs_terminal_total")
                    dead = metric(values, "brew_bridge_dead_letters_total")
                    return (
                        all_ended(config)
                        and metric(values, "brew_bridge_events_consumed_total") == 9
                        and metric(values, "brew_bridge_kafka_publishes_total", topic_kind="result")
                        == ended
                        and metric(values, "brew_bridge_kafka_publishes_total", topic_kind="dlq")
                        == dead
                    )

                await eventually(finished, within=30, what="every run ended and published")
                await page("/readyz")
                values = parse_metrics(await page("/metrics"))
        sim_log = pf.requests()

    dead = dead_letters(config)
    ended = int(metric(values, "brew_bridge_runs_terminal_total"))
    results = await asyncio.to_thread(broker.read, result_topic, ended)
    dlq = await asyncio.to_thread(broker.read, dlq_topic, len(dead))
    published = {t: sum(broker.end_offsets(t).values()) for t in (result_topic, dlq_topic)}
    where = ("--outbox", config.outbox.path)
    cli = await asyncio.gather(
        _cli("dlq", "list", *where),
        _cli("dlq", "list", "--json", *where),
        _cli("outbox", "stats", *where),
        _cli("dlq", "show", str(max(dead, key=lambda dl: len(str(dl.details))).id), *where),
    )

    # The scenario happened: every way a call can fail, on both sides, and a 401 on each.
    seen = Counter((e["path"].split("/")[2], e["status"], e["fault"]) for e in sim_log)
    seen.update((e["path"].rsplit("/", 1)[-1], e["status"], e["fault"]) for e in sim_log)
    for want in [
        ("triggers", 500, "error"),
        ("triggers", 200, "reset"),
        ("triggers", 503, "error"),
        ("triggers", 502, "error"),
        ("triggers", 401, None),
    ]:
        assert seen[want], (want, seen)
    for want in [
        ("status", 500, "error"),
        ("status", 200, "reset"),
        ("status", 502, "error"),
        ("status", 504, "error"),
        ("status", 0, "hang"),
        ("status", 401, None),
        ("results", 500, "error"),
        ("results", 200, "reset"),
        ("results", 502, "error"),
        ("results", 503, "error"),
        ("results", 200, None),
    ]:
        assert seen[want], (want, seen)
    assert Counter(dl.reason for dl in dead)["outcome_unknown"] == 1
    assert {dl.reason for dl in dead} <= {"outcome_unknown", "run_failed", "run_timed_out"}
    assert ended == len(results) == published[result_topic] == 8  # one per run
    assert len(dlq) == published[dlq_topic] == len(dead)
    events = {entry["event"] for entry in logs}
    assert {"fired", "fire will be retried", "fire dead-lettered", "run read failed"} <= events
    assert any(entry["event"].startswith("the target refused the API key") for entry in logs)
    assert [code for _args, code, _out in cli] == [0] * len(cli), cli

    # Nowhere the key. (The test's own calls to the simulator's admin routes, which name
    # the key to revoke it, are httpx lines too: not the bridge's.)
    bridge_records = [r for r in caplog.records if "/_sim/" not in r.getMessage()]
    # httpx's own lines of the polling URLs are there, the key masked.
    assert any("/ext/webhook/***/runs/" in r.getMessage() for r in bridge_records)
    outbox_files = [p for p in Path(config.outbox.path).parent.iterdir() if "outbox" in p.name]
    places: list[tuple[str, str | bytes]] = [
        *((f"log: {entry['event']}", _rendered(entry)) for entry in logs),
        *((f"stdlib log: {r.name}", caplog.handler.format(r)) for r in bridge_records),
        *((f"page {n}", text) for n, text in enumerate(pages)),
        *(
            (f"dead letter {dl.id}", json.dumps([dl.message, dl.code, dl.details], default=str))
            for dl in dead
        ),
        *((f"result record {r.offset}", repr((r.key, r.value, r.headers))) for r in results),
        *((f"dlq record {r.offset}", repr((r.key, r.value, r.headers))) for r in dlq),
        *((" ".join(args), out) for args, _code, out in cli),
        *((f"file {p.name}", p.read_bytes()) for p in outbox_files),
    ]
    assert len(outbox_files) >= 1
    leaks = Counter(
        where
        for where, text in places
        if (KEY.encode() in text if isinstance(text, bytes) else KEY in text)
    )
    assert not leaks, leaks


async def _cli(*args: str) -> tuple[list[str], int, str]:
    """``brew-bridge ARGS`` as an operator runs it: its arguments, exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "brew_bridge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return list(args), await proc.wait(), out.decode()
