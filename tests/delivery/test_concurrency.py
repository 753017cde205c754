"""dispatcher.concurrency bounds the fires on the wire, and the dispatcher uses all of
it: a fire being recorded no longer holds a slot."""

from __future__ import annotations

from pathlib import Path

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

from brew_bridge.testing.simulator import running_simulator
from brew_bridge.testing.windows import most_in_window

LATENCY_S = 0.3
CONCURRENCY = 3


async def test_concurrency_bounds_the_fires_on_the_wire_and_is_used(tmp_path: Path) -> None:
    faults = {"fire": {"latencyMs": LATENCY_S * 1000}}
    triggers = {"tri_slow": trigger(automation("auto_slow", ms=50))}
    with running_simulator(seed(triggers, faults=faults)) as sim:
        config = bridge_config(tmp_path, sim, dispatcher={"concurrency": CONCURRENCY})
        rows = [("slow", "tri_slow", f"k{i}", {"email": f"u{i}@example.com"}) for i in range(12)]
        queue(config, rows)
        async with running_worker(config):
            await eventually(lambda: all_ended(config), what="every fire and run to end")
        arrivals = [attempts[0]["at"] for attempts in fires_by_key(sim).values()]
    assert len(arrivals) == 12
    # Each fire is on the wire for LATENCY_S at least: no window shorter than that may
    # see more arrivals than there are slots, and a full window must see them all used.
    assert most_in_window(arrivals, LATENCY_S * 0.9) == CONCURRENCY
