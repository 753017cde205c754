"""The outbox failing under the dispatcher: a full disk.

A real fault: the outbox lives on a small tmpfs that the test fills (root can mount one
here and on CI; elsewhere the test says why it skips). A lock held by another process is
in tests/webhooks/test_webhook_http.py, where a store is waiting on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import structlog
from delivery_support import (
    all_ended,
    automation,
    bridge_config,
    eventually,
    fires_by_key,
    queue,
    running_worker,
    seed,
    trigger,
)

from brew_bridge.config import OutboxConfig
from brew_bridge.testing.faults import fill
from brew_bridge.testing.simulator import running_simulator

pytestmark = pytest.mark.slow

TRIGGERS = {"tri_welcome": trigger(automation("welcome", ms=50))}


async def readiness(port: int) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return answer.status_code, answer.json()


async def test_a_full_disk_backs_off_says_so_and_recovers_by_itself(
    tmp_path: Path, disk: Path
) -> None:
    # Brew answers 500 at first, so the rows keep coming back to be claimed.
    with running_simulator(seed(TRIGGERS, faults={"fire": {"errorRate": 1.0}})) as sim:
        config = bridge_config(tmp_path, sim, retry={"max_attempts": 10_000})
        config = config.model_copy(update={"outbox": OutboxConfig(path=str(disk / "outbox.db"))})
        keys = [f"k{i}" for i in range(5)]
        async with running_worker(config) as worker:
            queue(
                config, [("welcome", "tri_welcome", k, {"email": f"{k}@example.com"}) for k in keys]
            )
            await eventually(lambda: len(fires_by_key(sim)) == 5, what="every row to be tried")
            filler = fill(disk)

            async def not_ready() -> bool:
                return (await readiness(worker.port))[0] == 503

            await eventually(not_ready, what="readiness to turn false")
            with structlog.testing.capture_logs() as logs:
                await asyncio.sleep(3.0)  # not spinning can only be shown over time
            failures = [e for e in logs if e["event"] == "outbox operation failed"]
            # Backing off (0.1 s doubling to 5 s): a handful in 3 s, not thousands.
            assert 1 <= len(failures) <= 6, len(failures)
            _, body = await readiness(worker.port)
            assert "disk is full" in str(body["reasons"])
            sim.put_faults({"fire": {}})
            filler.unlink()
            await eventually(lambda: all_ended(config), what="delivery after the disk freed")
            assert (await readiness(worker.port))[0] == 200
        last = {key: [e["status"] for e in fires][-1] for key, fires in fires_by_key(sim).items()}
    assert last == dict.fromkeys(keys, 200)


async def test_runs_a_fire_started_are_kept_until_the_outbox_takes_them(
    tmp_path: Path, disk: Path
) -> None:
    # The fire is on the wire for 1.5 s; the disk fills meanwhile, so its runs cannot be
    # recorded when Brew answers. They must be recorded once it frees, with no new fire.
    with running_simulator(seed(TRIGGERS, faults={"fire": {"latencyMs": 1500}})) as sim:
        config = bridge_config(tmp_path, sim)
        config = config.model_copy(update={"outbox": OutboxConfig(path=str(disk / "outbox.db"))})
        async with running_worker(config) as worker:
            queue(config, [("welcome", "tri_welcome", "k1", {"email": "k1@example.com"})])
            await eventually(lambda: worker.in_flight == 1, what="the row to be claimed")
            filler = fill(disk)
            await eventually(lambda: "k1" in fires_by_key(sim), what="Brew to answer the fire")

            async def not_ready() -> bool:
                return (await readiness(worker.port))[0] == 503

            await eventually(not_ready, what="the failed recording to show")
            assert worker.in_flight == 1  # held: nothing else may fire it
            filler.unlink()
            await eventually(lambda: all_ended(config), what="the runs to be recorded and end")
        assert len(fires_by_key(sim)["k1"]) == 1
        assert len(sim.state.run_order) == 1
