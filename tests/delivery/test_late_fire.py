"""A fire first tried longer ago than Brew keeps keys is looked up before it fires again.

The simulator's idempotency window and the bridge's are compressed to seconds. Each
row is left as a crash or an unknown outcome leaves it: claimed long ago, not recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from delivery_support import (
    all_ended,
    automation,
    bridge_config,
    eventually,
    fire_at_brew,
    fires_by_key,
    outbox_view,
    running_worker,
    seed,
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import BridgeConfig
from brew_bridge.events import NewDelivery, Routed, SourceRecord
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

TRIGGERS = {"tri_welcome": trigger(automation("welcome", ms=200))}
WINDOW = 2.0  # seconds Brew (the simulator) and the bridge say keys are kept


def late_rows(config: BridgeConfig, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Rows stored and first tried 10 s ago, whose attempt ended in an unknown outcome."""
    long_ago = time.time() - 10
    routed = [
        Routed(
            record=SourceRecord("kafka", "events", f"0:{i}", None, b"{}"),
            deliveries=(NewDelivery("welcome", "brew", "tri_welcome", key, payload),),
        )
        for i, (key, payload) in enumerate(items)
    ]
    outbox = outbox_view(config)
    try:
        outbox.store_batch(routed, long_ago)
        for row in outbox.claim_due(long_ago, len(items)):
            outbox.mark_retry(
                row.id,
                next_attempt_at=long_ago,
                error={"status": None, "code": "UNKNOWN_OUTCOME", "message": "timed out"},
                now=long_ago,
                count_attempt=True,
            )
    finally:
        outbox.close()


def sim_config(tmp_path: Path, sim: SimulatorHandle) -> BridgeConfig:
    return bridge_config(
        tmp_path,
        sim,
        brew={"idempotency_window_seconds": WINDOW, "idempotency_margin_seconds": 0.0},
    )


async def test_runs_an_earlier_attempt_started_are_adopted_not_fired_again(
    tmp_path: Path,
) -> None:
    with running_simulator(seed(TRIGGERS, idempotencyWindowSeconds=0.001)) as sim:
        config = sim_config(tmp_path, sim)
        payload = {"email": "ada@example.com"}
        late_rows(config, [("k1", payload)])
        fire_at_brew(sim, "tri_welcome", "k1", payload)
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="the adopted run to end")
        assert len(fires_by_key(sim)["k1"]) == 1  # only the earlier attempt
        assert sim_runs_by_email(sim) == {"ada@example.com": 1}
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(time.time())
        assert stats.runs_by_status == {"completed": 1}
        assert stats.dead_letters == 0
    finally:
        outbox.close()


async def test_a_late_fire_with_no_runs_to_find_fires_once(tmp_path: Path) -> None:
    with running_simulator(seed(TRIGGERS, idempotencyWindowSeconds=0.001)) as sim:
        config = sim_config(tmp_path, sim)
        late_rows(config, [("k2", {"email": "grace@example.com"})])
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="the fire and its run")
        assert [e["status"] for e in fires_by_key(sim)["k2"]] == [200]
        assert sim_runs_by_email(sim) == {"grace@example.com": 1}


async def test_a_late_fire_that_cannot_be_looked_up_is_an_outcome_unknown_dead_letter(
    tmp_path: Path,
) -> None:
    with running_simulator(seed(TRIGGERS, idempotencyWindowSeconds=0.001)) as sim:
        config = sim_config(tmp_path, sim)
        late_rows(config, [("k3", {"firstName": "no address to look up"})])
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="the row to be set aside")
        assert "k3" not in fires_by_key(sim)  # never fired blind
    outbox = outbox_view(config)
    try:
        [dead] = outbox.dead_letters()
    finally:
        outbox.close()
    assert dead.reason == "outcome_unknown"
    assert "dlq redrive" in dead.message
