"""kill -9 at each point of the ingest loop, restart, and nothing is lost or doubled;
two consumers in one group share the partitions and store each event once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_helpers import (
    committed_to_end,
    expected_contents,
    outbox_contents,
    stored_records,
    wait_for,
)

from brew_bridge.config import BridgeConfig, compiled_routes
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.source import KafkaObserver, KafkaSource, build_kafka_source
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle, example_events, produce_events

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("crash_worker.py")
Build = Callable[..., tuple[BridgeConfig, dict[str, str]]]
BATCH = 25
CRASH_AFTER = 3  # batches


def run_worker(config_path: Path, point: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), str(config_path), point, str(CRASH_AFTER)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def committed_total(broker: BrokerHandle, config: BridgeConfig, topics: dict[str, str]) -> int:
    """Records committed so far: offsets start at 0 and every record is a message."""
    return sum(
        c or 0 for t in topics.values() for c in broker.committed(config.kafka.group_id, t).values()
    )


def produce_stream(broker: BrokerHandle, topics: dict[str, str]) -> int:
    """Good events with poison records in the middle of the stream."""
    total = produce_events(broker, topics, example_events(150))
    for topic in topics.values():
        broker.produce(topic, [b"not json", b"[1, 2]", b'{"type": "nobody.listens"}'])
        total += 3
    return total + produce_events(broker, topics, example_events(150, start=150))


@pytest.mark.parametrize(
    ("point", "routing_workers"),
    [
        ("before_outbox_commit", 0),
        ("after_outbox_commit", 0),
        ("after_offset_commit", 0),
        # Pipelined: the batch being routed in the child dies with the process.
        ("after_outbox_commit", 1),
    ],
)
def test_sigkill_at_each_point_loses_nothing_and_doubles_nothing(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path, point: str, routing_workers: int
) -> None:
    config, topics = bridge_config(
        kafka={
            "max_batch_records": BATCH,
            "session_timeout_ms": 3000,
            "heartbeat_interval_ms": 500,
            "routing_workers": routing_workers,
        }
    )
    config_path = tmp_path / "bridge.yaml"
    total = produce_stream(broker, topics)

    crashed = run_worker(config_path, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]

    # The state the kill left behind is the one each point promises.
    stored = len(stored_records(config.outbox.path))
    committed = committed_total(broker, config, topics)
    assert 0 < stored < total
    if point == "after_outbox_commit":
        assert stored > committed  # the batch is stored, its offsets are not committed
    else:
        assert stored == committed  # stored and committed move together

    finished = run_worker(config_path, "none")
    assert finished.returncode == 0, finished.stderr[-3000:]

    records = stored_records(config.outbox.path)
    assert len(records) == total
    assert len({(r.stream, r.position) for r in records}) == total
    deliveries, dead = outbox_contents(config.outbox.path)
    assert (deliveries, dead) == expected_contents(records, compiled_routes(config))
    assert set(deliveries.values()) == {1}
    assert set(dead.values()) == {1}
    assert len(dead) == 3 * len(topics)
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)


async def test_two_consumers_in_one_group_share_the_partitions_and_store_each_event_once(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    """Two replicas, each with its own outbox file: the second joins mid-stream, the
    first flushes and commits what it holds when its partitions are revoked, so
    together they store every event exactly once."""
    config, topics = bridge_config(
        kafka={"max_batch_records": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    )
    routes = compiled_routes(config)

    class Owned(KafkaObserver):
        def __init__(self) -> None:
            self.partitions: set[tuple[str, int]] = set()

        def on_assigned(self, partitions: frozenset[tuple[str, int]]) -> None:
            self.partitions |= partitions

        def on_revoked(self, partitions: frozenset[tuple[str, int]]) -> None:
            self.partitions -= partitions

    def replica(name: str) -> tuple[KafkaSource, Path, Owned]:
        path = tmp_path / f"{name}.db"
        outbox = Outbox.open(path, synchronous="NORMAL")
        owned = Owned()
        return build_kafka_source(config, routes, outbox, Metrics(), observer=owned), path, owned

    (a, a_path, a_owned), (b, b_path, b_owned) = replica("a"), replica("b")
    stop = asyncio.Event()
    total = produce_events(broker, topics, example_events(200))
    tasks = [asyncio.create_task(a.run(stop))]
    try:
        await wait_for(lambda: a.summary.records > 0, 30, "replica a to start storing")
        tasks.append(asyncio.create_task(b.run(stop)))
        await wait_for(lambda: bool(b_owned.partitions), 60, "replica b to get partitions")
        assert not a_owned.partitions & b_owned.partitions
        total += produce_events(broker, topics, example_events(200, start=200))

        def union() -> list[tuple[str, int, int]]:
            return [
                (r.stream, r.position) for path in (a_path, b_path) for r in stored_records(path)
            ]

        await wait_for(lambda: len(set(union())) == total, 60, "every event stored")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    stored = union()
    assert len(stored) == total  # no event in both outboxes
    assert a.summary.records > 0
    assert b.summary.records > 0
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)
