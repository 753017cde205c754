"""Faults injected by the simulator: nothing lost, nothing doubled, nothing wrongly dead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from delivery_support import (
    API_KEY,
    all_ended,
    automation,
    bridge_config,
    eventually,
    fires_by_key,
    metric,
    outbox_view,
    queue,
    running_worker,
    scrape,
    seed,
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import RateLimit
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

TRIGGERS = {"tri_welcome": trigger(automation("auto_welcome", ms=200))}


def _batch(n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        ("welcome", "tri_welcome", f"welcome:{i}", {"email": f"u{i}@example.com"}) for i in range(n)
    ]


def _assert_each_key_triggered_once(sim: SimulatorHandle, n: int) -> None:
    """Brew started exactly one set of runs per key: no fire lost, none doubled."""
    assert sim_runs_by_email(sim) == {f"u{i}@example.com": 1 for i in range(n)}


def _assert_delivered_without_dead_letters(config: Any, n: int) -> None:
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(0)
        assert stats.deliveries["fired"] == n
        assert stats.runs_by_status == {"completed": n}
        assert outbox.dead_letters() == []
    finally:
        outbox.close()


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"fault": "reset", "count": 3}, "UNKNOWN_OUTCOME"),
        ({"fault": "hangAfterWork", "count": 3, "seconds": 5}, "UNKNOWN_OUTCOME"),
        ({"fault": "errorAfterWork", "count": 3, "status": 500}, "INTERNAL_ERROR"),
    ],
    ids=["reset", "hang-past-timeout", "5xx-after-work"],
)
async def test_work_done_but_unanswered_is_replayed_not_repeated(
    tmp_path: Path, fault: dict[str, Any], code: str
) -> None:
    n = 6
    with running_simulator(seed(TRIGGERS, faults={"fire": {"next": [fault]}})) as sim:
        config = bridge_config(tmp_path, sim, brew={"timeout_seconds": 1.0})
        queue(config, _batch(n))
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), what="every delivery and run to end")
            values = await scrape(worker)
        _assert_each_key_triggered_once(sim, n)
    _assert_delivered_without_dead_letters(config, n)
    assert metric(values, "brew_bridge_fires_total", code=code) == 3
    # The three whose first answer was lost got their original runs back on replay.
    assert metric(values, "brew_bridge_fires_total", code="IDEMPOTENT_REPLAY") == 3
    assert metric(values, "brew_bridge_fires_total", code="TRIGGERED") == n - 3


async def test_a_429_burst_is_waited_out_and_never_spends_attempts(tmp_path: Path) -> None:
    n = 5
    burst = {"fire": {"next": [{"fault": "rateLimit", "count": 6, "retryAfter": 1}]}}
    with running_simulator(seed(TRIGGERS, faults=burst)) as sim:
        # Two attempts allowed: six 429s would dead-letter rows if they counted.
        config = bridge_config(tmp_path, sim, retry={"max_attempts": 2})
        queue(config, _batch(n))
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), what="every delivery and run to end")
            values = await scrape(worker)
        _assert_each_key_triggered_once(sim, n)
        statuses = [e["status"] for k in fires_by_key(sim).values() for e in k]
        assert statuses.count(429) == 6
    _assert_delivered_without_dead_letters(config, n)
    assert metric(values, "brew_bridge_fires_total", code="RATE_LIMITED") == 6


async def test_a_revoked_key_pauses_firing_until_it_is_restored(tmp_path: Path) -> None:
    n = 4
    with running_simulator(seed(TRIGGERS)) as sim:
        sim.put_key(API_KEY, {"scopes": ["all"], "revoked": True})
        config = bridge_config(tmp_path, sim, dispatcher={"auth_probe_seconds": 0.3})
        queue(config, _batch(n))
        async with running_worker(config) as worker:
            base = f"http://127.0.0.1:{worker.port}"
            async with httpx.AsyncClient(base_url=base) as http:

                async def not_ready() -> bool:
                    return (await http.get("/readyz")).status_code == 503

                await eventually(not_ready, what="readiness to turn false")
                body = (await http.get("/readyz")).json()
                assert "401" in body["reasons"]["circuit"]
                assert "BREW_API_KEY" in body["reasons"]["circuit"]  # says what to fix
                values = await scrape(worker)
                assert metric(values, "brew_bridge_circuit_open") == 1
                # Probes keep knocking; rows stay pending, no attempt counted, nothing dead.
                await eventually(
                    lambda: sum(len(v) for v in fires_by_key(sim).values()) >= 3,
                    what="a few probes",
                )
                outbox = outbox_view(config)
                try:
                    assert outbox.stats(0).deliveries["pending"] == n
                    assert outbox.dead_letters() == []
                    assert {outbox.delivery(i).attempts for i in range(1, n + 1)} == {0}  # type: ignore[union-attr]
                finally:
                    outbox.close()
                probes = sum(len(v) for v in fires_by_key(sim).values())

                sim.put_key(API_KEY, {"scopes": ["all"], "revoked": False})
                await eventually(lambda: all_ended(config), what="firing to resume and finish")
                assert (await http.get("/readyz")).status_code == 200
                values = await scrape(worker)
        _assert_each_key_triggered_once(sim, n)
    _assert_delivered_without_dead_letters(config, n)
    assert metric(values, "brew_bridge_circuit_open") == 0
    assert probes < 3 + 10, "while the key was revoked only one probe went out per interval"


@pytest.mark.slow
@pytest.mark.parametrize("api_shape", ["9.3", "10"])
async def test_a_bad_day_loses_nothing_and_doubles_nothing(tmp_path: Path, api_shape: str) -> None:
    n = 40
    faults = {
        "seed": 7,
        "fire": {
            "errorRate": 0.2,
            "errorStatuses": [500, 503],
            "resetRate": 0.1,
            "hangRate": 0.05,
            "hangSeconds": 3,
            "rateLimitRate": 0.05,
            "rateLimitRetryAfter": 1,
        },
        "read": {"errorRate": 0.1, "errorStatuses": [500, 502], "resetRate": 0.05},
    }
    with running_simulator(seed(TRIGGERS, faults=faults), api_shape=api_shape) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            brew={"timeout_seconds": 1.0},
            limits={"fire": RateLimit(limit=200, window_seconds=1)},
        )
        queue(config, _batch(n))
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), within=90, what="every delivery to end")
            values = await scrape(worker)
        _assert_each_key_triggered_once(sim, n)
        attempts = sum(len(v) for v in fires_by_key(sim).values())
    _assert_delivered_without_dead_letters(config, n)
    accepted = metric(values, "brew_bridge_fires_total", code="TRIGGERED") + metric(
        values, "brew_bridge_fires_total", code="IDEMPOTENT_REPLAY"
    )
    assert accepted == n
    assert metric(values, "brew_bridge_fires_total", code="IDEMPOTENT_REPLAY") >= 1
    assert attempts > n, "the faults made the bridge retry"
    assert metric(values, "brew_bridge_fire_retries_total") == attempts - n
