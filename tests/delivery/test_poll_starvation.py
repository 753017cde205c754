"""The poller never starves: one run of ours behind thousands of other runs of its trigger.

A sweep down to our run needs ~30 pages; the read budget gives 6 a window. Before, the
sweep was thrown away when the budget ran out, the same sweep led every cycle and the
run never ended (until its deadline made it a false run_timed_out). Now a sweep keeps
what its pages showed and how dense they were, no sweep plans past max_sweep_pages, and
a run no sweep reaches is read by id.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from delivery_support import (
    API_KEY,
    automation,
    bridge_config,
    eventually,
    fire_at_brew,
    fires_by_key,
    outbox_view,
    queue,
    running_worker,
    seed,
    trigger,
)

from brew_bridge.config import BridgeConfig, RateLimit
from brew_bridge.testing.simulator import running_simulator

FLOOD_KEY = "brew_flood_key"
_LIFTED = {"limit": 1_000_000, "windowSeconds": 1}
# Runs of 20 s on one trigger; the bridge's key and the other client's share one brand,
# so the bridge's list shows the other client's runs too.
BUSY_SEED = seed(
    {"tri_busy": trigger(automation("busy", ms=20000))},
    keys={
        API_KEY: {"brandId": "brand_1", "scopes": ["all"]},
        FLOOD_KEY: {"brandId": "brand_1", "scopes": ["all"]},
    },
    limits={"automation.runs.write": _LIFTED, "automation.runs.read": _LIFTED},
)
OTHER_RUNS = 3000


async def flood(base_url: str, count: int) -> None:
    """``count`` fires of the same trigger from another client of the brand."""
    headers = {"Authorization": f"Bearer {FLOOD_KEY}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                answer = await http.post(
                    "/v1/automations/triggers/tri_busy/fire",
                    json={"payload": {"email": f"other{i}@example.com"}},
                    headers={"Idempotency-Key": f"flood-{i}"},
                )
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(one(i) for i in range(count)))


def our_runs(config: BridgeConfig) -> dict[str, int]:
    outbox = outbox_view(config)
    try:
        return dict(outbox.stats(time.time()).runs_by_status)
    finally:
        outbox.close()


@pytest.mark.slow
async def test_one_run_behind_thousands_of_others_still_reaches_its_end(tmp_path: Path) -> None:
    with running_simulator(BUSY_SEED) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            limits={"run_read": RateLimit(limit=6, window_seconds=3)},
            poller={"interval_seconds": 0.5},
        )
        queue(config, [("ours", "tri_busy", "k-old", {"email": "old@example.com"})])
        async with running_worker(config):
            await eventually(lambda: "k-old" in fires_by_key(sim), what="our first fire")
            # Everyone else fires the same trigger after us: ~30 pages down to our run;
            # then a second run of ours, so one sweep would cover both.
            await flood(sim.base_url, OTHER_RUNS)
            queue(config, [("ours", "tri_busy", "k-new", {"email": "new@example.com"})])
            # Each run ends 20 s after its fire (the others too: the list stays full).
            await eventually(
                lambda: our_runs(config) == {"completed": 2},
                within=60,
                what="both our runs to be recorded at their true end",
            )
        outbox = outbox_view(config)
        try:
            stats = outbox.stats(time.time())
        finally:
            outbox.close()
    assert stats.runs_by_status == {"completed": 2}
    assert stats.dead_letters == 0


@pytest.mark.slow
async def test_a_replayed_fire_whose_run_started_long_before_is_read_by_id(
    tmp_path: Path,
) -> None:
    # The first acceptance of k1 went unanswered; its run started then, before 1,500
    # other runs. The bridge's retry is answered IDEMPOTENT_REPLAY with that run: it was
    # "fired" now but sits 15 pages down, deeper than any sweep goes (10 pages).
    with running_simulator(BUSY_SEED) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            limits={"run_read": RateLimit(limit=30, window_seconds=3)},
            poller={"interval_seconds": 0.5},
        )
        payload = {"email": "replayed@example.com"}
        fire_at_brew(sim, "tri_busy", "k1", payload)
        await flood(sim.base_url, 1500)
        queue(
            config,
            [
                ("ours", "tri_busy", "k1", payload),
                ("ours", "tri_busy", "k2", {"email": "fresh@example.com"}),
            ],
        )
        async with running_worker(config):
            await eventually(
                lambda: our_runs(config) == {"completed": 2},
                within=60,
                what="the replayed run to be read by id and both runs to end",
            )
        assert len(sim.state.run_order) == 1502  # k1 was not started twice
