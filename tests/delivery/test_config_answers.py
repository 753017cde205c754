"""Answers about the bridge's setup, and runs Brew says it does not know, over real HTTP.

* ``400 BRAND_ID_REQUIRED`` / ``404 BRAND_NOT_FOUND`` are about ``brew.brand_id`` and the
  key, not about an event or a run: on a fire or on a run read they open the auth
  circuit (firing and polling pause, ``/readyz`` says what to fix, one probe per
  interval) and nothing is dead-lettered or failed; once the simulator answers normally
  again the probe closes it and everything is delivered and followed.
* ``404 AUTOMATION_RUN_NOT_FOUND`` ends a run only when a second read, on a later cycle
  after the confirmation delay, says the same.

The simulator produces these answers from its key table: an organization key answers
``BRAND_ID_REQUIRED`` without ``X-Brand-Id`` and ``BRAND_NOT_FOUND`` for a brand it does
not have; a run read with a key of another brand is ``AUTOMATION_RUN_NOT_FOUND``.
"""

from __future__ import annotations

from itertools import pairwise
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
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import BridgeConfig
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

POLL_INTERVAL = 0.25
# The target's default: five poll intervals between a 404 and the read confirming it.
CONFIRM_SECONDS = 5 * POLL_INTERVAL


def _seed(key: dict[str, Any], ms: float) -> dict[str, Any]:
    return {
        "keys": {API_KEY: {"scopes": ["all"], **key}},
        "triggers": {"tri_welcome": trigger(automation("auto_welcome", ms=ms))},
    }


def _batch(n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        ("welcome", "tri_welcome", f"welcome:{i}", {"email": f"u{i}@example.com"}) for i in range(n)
    ]


def _run_reads(sim: SimulatorHandle) -> list[dict[str, Any]]:
    """The simulator's run reads by id (9.3: ``GET /runs?automationRunId=``), oldest first."""
    return [
        e
        for e in sim.requests()
        if e["method"] == "GET"
        and e["path"].endswith("/v1/automations/runs")
        and "automationRunId" in e["query"]
    ]


def _run_statuses(config: BridgeConfig) -> dict[str, int]:
    outbox = outbox_view(config)
    try:
        return dict(outbox.stats(0).runs_by_status)
    finally:
        outbox.close()


def _live_runs(config: BridgeConfig) -> int:
    outbox = outbox_view(config)
    try:
        return len(outbox.live_runs())
    finally:
        outbox.close()


# -- AUTOMATION_RUN_NOT_FOUND: confirmed by a second read ---------------------------------


async def test_a_run_brew_forgets_once_is_read_again_and_not_failed(tmp_path: Path) -> None:
    with running_simulator(_seed({"brandId": "brand_1"}, ms=2500)) as sim:
        config = bridge_config(tmp_path, sim, poller={"interval_seconds": POLL_INTERVAL})
        queue(config, _batch(1))
        async with running_worker(config):
            await eventually(lambda: _live_runs(config) == 1, what="the fire to start a run")
            # Reads with a key of another brand: Brew answers the run is not found ...
            sim.put_key(API_KEY, {"brandId": "brand_2"})
            await eventually(
                lambda: any(e["status"] == 404 for e in _run_reads(sim)), what="a 404 read"
            )
            # ... once: then it knows the run again.
            sim.put_key(API_KEY, {"brandId": "brand_1"})
            await eventually(lambda: all_ended(config), what="the run to end")
        reads = _run_reads(sim)
    assert _run_statuses(config) == {"completed": 1}
    outbox = outbox_view(config)
    try:
        assert outbox.dead_letters() == []
    finally:
        outbox.close()
    first_404 = next(i for i, e in enumerate(reads) if e["status"] == 404)
    assert [e["status"] for e in reads].count(404) == 1
    # The run was not read again before the confirmation was due: no reads spent on it.
    assert reads[first_404 + 1]["at"] - reads[first_404]["at"] >= CONFIRM_SECONDS * 0.9


async def test_a_run_brew_no_longer_knows_ends_failed_after_a_second_read(tmp_path: Path) -> None:
    with running_simulator(_seed({"brandId": "brand_1"}, ms=60_000)) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            poller={"interval_seconds": POLL_INTERVAL, "fetch_logs": True},
        )
        queue(config, _batch(1))
        async with running_worker(config):
            await eventually(lambda: _live_runs(config) == 1, what="the fire to start a run")
            sim.put_key(API_KEY, {"brandId": "brand_2"})  # from now on the run is unknown
            await eventually(lambda: all_ended(config), what="the run to end")
        reads = _run_reads(sim)
    assert _run_statuses(config) == {"failed": 1}
    gone = [e for e in reads if e["status"] == 404]
    assert len(gone) == 2, "one read to learn it, one to confirm it; none in between"
    assert reads[-1] is gone[-1]
    assert gone[1]["at"] - gone[0]["at"] >= CONFIRM_SECONDS * 0.9
    outbox = outbox_view(config)
    try:
        (dead,) = outbox.dead_letters()
        assert dead.stage == "run"
        assert "Brew no longer knows run" in dead.message  # the run's error
        assert "AUTOMATION_RUN_NOT_FOUND" in dead.message
    finally:
        outbox.close()


# -- setup answers open the circuit ------------------------------------------------------

# (the key as the simulator has it, brew.brand_id, the key once fixed, the answer)
CONFIG_CASES = {
    "brand-not-found": (
        {"brands": ["brand_a"]},
        "brand_b",
        {"brands": ["brand_a", "brand_b"]},
        "404 BRAND_NOT_FOUND",
    ),
    "brand-id-required": (
        {"brands": ["brand_a"]},
        None,
        {"brandId": "brand_a"},
        "400 BRAND_ID_REQUIRED",
    ),
}


async def _wait_not_ready(http: httpx.AsyncClient) -> str:
    async def not_ready() -> bool:
        return (await http.get("/readyz")).status_code == 503

    await eventually(not_ready, what="readiness to turn false")
    reason: str = (await http.get("/readyz")).json()["reasons"]["circuit"]
    return reason


@pytest.mark.parametrize(
    ("broken", "brand_id", "fixed", "answer"), CONFIG_CASES.values(), ids=CONFIG_CASES.keys()
)
async def test_a_setup_answer_on_fire_pauses_firing_until_fixed(
    tmp_path: Path,
    broken: dict[str, Any],
    brand_id: str | None,
    fixed: dict[str, Any],
    answer: str,
) -> None:
    n = 4
    with running_simulator(_seed(broken, ms=200)) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            brew={"brand_id": brand_id},
            dispatcher={"auth_probe_seconds": 0.3},
            poller={"interval_seconds": POLL_INTERVAL},
        )
        queue(config, _batch(n))
        async with (
            running_worker(config) as worker,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http,
        ):
            reason = await _wait_not_ready(http)
            assert answer in reason
            assert "brew.brand_id" in reason  # says what to fix
            assert "firing and polling are paused" in reason
            assert metric(await scrape(worker), "brew_bridge_circuit_open") == 1
            await eventually(
                lambda: sum(len(v) for v in fires_by_key(sim).values()) >= n + 2,
                what="a few probes after the first fires",
            )
            outbox = outbox_view(config)
            try:
                rows = outbox.stats(0).deliveries
                # A probe may hold one row (firing) at this moment; none is fired.
                assert rows.get("pending", 0) + rows.get("firing", 0) == n
                assert rows.get("fired", 0) == 0
                assert outbox.dead_letters() == []  # no dead letters pile up
                assert {outbox.delivery(i).attempts for i in range(1, n + 1)} == {0}  # type: ignore[union-attr]
            finally:
                outbox.close()
            refused_at = sorted(e["at"] for v in fires_by_key(sim).values() for e in v)

            sim.put_key(API_KEY, fixed)  # Brew answers normally again
            await eventually(lambda: all_ended(config), what="firing to resume and finish")
            assert (await http.get("/readyz")).status_code == 200
            values = await scrape(worker)
        assert sim_runs_by_email(sim) == {f"u{i}@example.com": 1 for i in range(n)}
    assert metric(values, "brew_bridge_circuit_open") == 0
    # Before the fix: the first fires (all at once), then one probe per 0.3 s interval.
    gaps = [later - earlier for earlier, later in pairwise(refused_at)]
    assert sum(1 for gap in gaps if gap < 0.3 * 0.9) <= n - 1
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(0)
        assert stats.deliveries["fired"] == n
        assert stats.runs_by_status == {"completed": n}
        assert outbox.dead_letters() == []
    finally:
        outbox.close()


# The key firing works with, the key that breaks run reads, the key once fixed, the answer.
READ_CASES = {
    "brand-not-found": (
        {"brands": ["brand_b"]},
        "brand_b",
        {"brands": ["brand_a"]},
        {"brands": ["brand_a", "brand_b"]},
        "404 BRAND_NOT_FOUND",
    ),
    "brand-id-required": (
        {"brandId": "brand_b"},
        None,
        {"brands": ["brand_b"]},
        {"brandId": "brand_b"},
        "400 BRAND_ID_REQUIRED",
    ),
}


@pytest.mark.parametrize(
    ("working", "brand_id", "broken", "fixed", "answer"),
    READ_CASES.values(),
    ids=READ_CASES.keys(),
)
async def test_a_setup_answer_on_a_run_read_pauses_polling_until_fixed(
    tmp_path: Path,
    working: dict[str, Any],
    brand_id: str | None,
    broken: dict[str, Any],
    fixed: dict[str, Any],
    answer: str,
) -> None:
    probe_every = 0.5
    with running_simulator(_seed(working, ms=4000)) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            brew={"brand_id": brand_id},
            dispatcher={"auth_probe_seconds": probe_every},
            poller={"interval_seconds": 0.1},
        )
        queue(config, _batch(1))
        async with (
            running_worker(config) as worker,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http,
        ):
            await eventually(lambda: _live_runs(config) == 1, what="the fire to start a run")
            sim.put_key(API_KEY, broken)
            reason = await _wait_not_ready(http)
            assert answer in reason
            assert "brew.brand_id" in reason
            assert metric(await scrape(worker), "brew_bridge_circuit_open") == 1
            await eventually(
                lambda: sum(1 for e in _run_reads(sim) if e["status"] >= 400) >= 3,
                what="a few probe reads",
            )
            # The run is still live: neither failed nor dead-lettered for the answer.
            assert _live_runs(config) == 1
            outbox = outbox_view(config)
            try:
                assert outbox.dead_letters() == []
            finally:
                outbox.close()
            refused_at = [e["at"] for e in _run_reads(sim) if e["status"] >= 400]

            sim.put_key(API_KEY, fixed)
            await eventually(lambda: all_ended(config), what="polling to resume and finish")
            assert (await http.get("/readyz")).status_code == 200
            values = await scrape(worker)
    assert metric(values, "brew_bridge_circuit_open") == 0
    # Polling every 0.1 s would have read ten times a second; the gate let one probe
    # read through per interval.
    gaps = [later - earlier for earlier, later in pairwise(refused_at)]
    assert min(gaps) >= probe_every * 0.9
    assert _run_statuses(config) == {"completed": 1}
    outbox = outbox_view(config)
    try:
        assert outbox.dead_letters() == []
    finally:
        outbox.close()
