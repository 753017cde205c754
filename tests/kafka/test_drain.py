"""Scale-down: two members of one group, one leaves for good, ``drain`` empties its outbox.

Nothing is stranded (the leaving member's pending deliveries fire, from its own
volume) and nothing is doubled (the group reads on from the offsets it committed, which
cover only what that outbox holds; each event fires exactly once at Brew).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import produce_samples, wait_for

from brew_bridge.cli.drain import drain, draining
from brew_bridge.config import BridgeConfig
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator
from brew_bridge.worker import Worker

REPO = Path(__file__).resolve().parents[2]
SIM_SEED = REPO / "config" / "sim-seed.yaml"
KEY = "brew_drain_test_key"

Build = Callable[..., tuple[BridgeConfig, dict[str, str]]]


def member(config: BridgeConfig, sim: SimulatorHandle, outbox: Path, **brew: Any) -> BridgeConfig:
    """The config of one member: its own outbox (its volume), the simulator as Brew."""
    return config.model_copy(
        update={
            "outbox": config.outbox.model_copy(update={"path": str(outbox)}),
            "brew": config.brew.model_copy(update={"base_url": sim.base_url, **brew}),
            "server": config.server.model_copy(update={"host": "127.0.0.1", "port": 0}),
        }
    )


def backlog(config: BridgeConfig) -> tuple[int, int]:
    outbox = Outbox.open(config.outbox.path)
    try:
        stats = outbox.stats(time.time())
        return stats.backlog, stats.live_runs
    finally:
        outbox.close()


def consumed(worker: Worker) -> float:
    labels = {"source": "kafka"}
    return (
        worker.metrics.registry.get_sample_value("brew_bridge_events_consumed_total", labels) or 0
    )


@pytest.mark.slow
async def test_two_members_scaled_to_one_strand_nothing_and_double_nothing(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    from pydantic import SecretStr

    base, topics = bridge_config(
        kafka={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_batch_records": 5}
    )
    with running_simulator(SIM_SEED) as sim:
        key = {"api_key": SecretStr(KEY)}
        staying = member(base, sim, tmp_path / "member-0.db", **key)
        # The leaving member fires slowly: at scale-down it still holds pending work.
        slow = base.brew.rate_limits.model_copy(
            update={"fire": base.brew.rate_limits.fire.model_copy(update={"limit": 1})}
        )
        leaving = member(base, sim, tmp_path / "member-1.db", rate_limits=slow, **key)
        workers = [Worker(staying, env={}), Worker(leaving, env={})]
        stops = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(w.run(s)) for w, s in zip(workers, stops, strict=True)]
        try:
            await asyncio.gather(*(w.started.wait() for w in workers))
            produced = produce_samples(broker, topics)
            # Both members consumed their share: every sample is in one outbox or the other.
            await wait_for(
                lambda: sum(consumed(w) for w in workers) >= len(produced),
                60,
                "both members to store their partitions",
            )
            assert backlog(leaving)[0] > 0, "the leaving member has nothing pending"
            stops[1].set()  # scale-down: SIGTERM, then the member is gone for good
            await asyncio.wait_for(tasks[1], 30)
            # The drain Job mounts the leaving member's volume and empties it.
            lifted = staying.brew.rate_limits
            job = draining(member(leaving, sim, Path(leaving.outbox.path), rate_limits=lifted))
            report = await drain(job, give_up_after=60)
            assert report["drained"], report
            await wait_for(lambda: backlog(staying) == (0, 0), 60, "the staying member to finish")
        finally:
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        accepted = {
            e["idempotencyKey"]
            for e in sim.requests()
            if e["method"] == "POST" and e["path"].endswith("/fire") and e["status"] == 200
        }
        # One fire accepted per key: a replay answers with the same instance, a second
        # send would have made a new one.
        instances = {run.trigger_instance_id for run in sim.state.run_order}
    assert backlog(leaving) == (0, 0)
    assert accepted, "nothing fired"
    assert len(instances) == len(accepted)
