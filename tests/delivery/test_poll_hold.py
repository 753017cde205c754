"""Brew runs are not read before they can have ended: the lengths of a trigger's runs
seen ended tell the next runs' plan when to read, against the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from brew_bridge.config import BrewConfig
from brew_bridge.events import RunRead
from brew_bridge.store import RunRecord
from brew_bridge.targets.brew.client import BrewClient, build_http_client
from brew_bridge.targets.brew.poll import BrewRuns
from brew_bridge.targets.brew.pollplan import PollSettings
from brew_bridge.testing.simulator import running_simulator
from simulator_support import Slots

KEY = "brew_hold_key"
RUN_MS = 300
INTERVAL = 5.0  # far longer than a run: a plan that waits an interval is plain to see
SEED = {
    "triggers": {
        "tri_quick": {
            "payloadSchema": {
                "type": "object",
                "fields": [{"key": "email", "type": "string", "required": True}],
            },
            "automations": [{"automationId": "auto_quick", "durationMs": RUN_MS}],
        }
    },
    "keys": {KEY: {"brandId": "brand_a"}},
}


async def fired(client: BrewClient, n: int, wave: str) -> list[RunRecord]:
    records = []
    for i in range(n):
        result = await client.fire("tri_quick", {"email": f"{wave}{i}@example.com"}, f"{wave}:{i}")
        (run_id,) = result.run_ids
        records.append(
            RunRecord(
                run_id=run_id,
                delivery_id=i,
                route="quick",
                target="brew",
                action="tri_quick",
                idempotency_key=f"{wave}:{i}",
                event_id=None,
                status="running",
                fired_at=time.time(),
                last_checked_at=None,
            )
        )
    return records


async def cycle(
    runs: BrewRuns, live: Sequence[RunRecord], slots: Slots, now: float | None = None
) -> list[RunRead]:
    at = time.time() if now is None else now
    return [s for batch in [b async for b in runs.poll(live, at, slots)] for s in batch]


async def test_runs_are_read_when_their_trigger_runs_can_have_ended_not_an_interval_later() -> None:
    with running_simulator(SEED) as sim:
        config = BrewConfig(base_url=sim.base_url, timeout_seconds=5.0)
        client = BrewClient(
            build_http_client(config), api_key=lambda: KEY, api_shape=str(sim.state.api_shape)
        )
        runs = BrewRuns(client, PollSettings(interval=INTERVAL), fetch_logs=False, clock=time.time)
        slots = Slots()
        try:
            first = await fired(client, 3, "first")
            # Nothing known about the trigger: its runs are due one interval after the fire.
            assert await cycle(runs, first, slots) == []
            assert slots.modes == []
            assert slots.held_until is not None
            assert slots.held_until >= first[-1].fired_at + INTERVAL - 0.01
            # Planned as if the interval had passed (the test does not wait it out), a
            # read shows the three ended once the simulator's 0.3 s are up.
            deadline = time.monotonic() + 10
            seen: list[RunRead] = []
            while not all(s.status == "completed" for s in seen) or len(seen) < 3:
                assert time.monotonic() < deadline, "the first runs never ended"
                await asyncio.sleep(0.05)
                seen = await cycle(runs, first, Slots(), now=slots.held_until)

            second = await fired(client, 3, "second")
            slots = Slots()
            assert await cycle(runs, second, slots) == []
            # Now the trigger's runs are known to take ~0.3 s: the read is due then.
            assert slots.held_until is not None
            assert slots.held_until - second[-1].fired_at < INTERVAL / 2
        finally:
            await client._http.aclose()
