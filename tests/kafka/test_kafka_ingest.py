"""The Kafka source against a real broker (Tansu) and a real outbox file: samples and
poison records in, deliveries and dead letters out, offsets committed after."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import (
    committed_to_end,
    expected_contents,
    outbox_contents,
    produce_samples,
    stored_records,
    wait_for,
)

from brew_bridge.config import BridgeConfig, compiled_routes
from brew_bridge.errors import SourceError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.source import KafkaObserver, KafkaSource, build_kafka_source
from brew_bridge.store import Outbox
from brew_bridge.testing.faults import fill
from brew_bridge.testing.kafka import BrokerHandle, example_events, produce_events

# Small timeouts: Tansu's join takes about half the session timeout.
FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500, "max_batch_records": 50}

Build = Callable[..., tuple[BridgeConfig, dict[str, str]]]


def source_for(
    config: BridgeConfig, *, observer: KafkaObserver | None = None
) -> tuple[KafkaSource, Outbox, Metrics]:
    outbox = Outbox.open(config.outbox.path, synchronous=config.outbox.synchronous)
    metrics = Metrics()
    source = build_kafka_source(config, compiled_routes(config), outbox, metrics, observer=observer)
    return source, outbox, metrics


def value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


POISON = [
    ("tombstone", "payments", b"", ()),
    ("binary", "orders", b"\x00\x9f\x92\x96", (("X-Shopify-Topic", b"orders/create"),)),
    ("no_type", "signups", b'{"data": {"id": "user_x"}}', ()),
]


@pytest.mark.parametrize("routing_workers", [0, 1])
async def test_samples_and_poison_records_land_once_and_offsets_follow(
    bridge_config: Build, broker: BrokerHandle, routing_workers: int
) -> None:
    config, topics = bridge_config(
        kafka={**FAST, "max_record_bytes": 16_384, "routing_workers": routing_workers}
    )
    produced = produce_samples(broker, topics, POISON)
    source, outbox, metrics = source_for(config)

    summary = await source.drain()

    path = config.outbox.path
    records = stored_records(path)
    # Every record is stored once, byte for byte (none was dropped: no_route dead-letters).
    assert sorted((r.stream, r.value) for r in records) == sorted(
        (topics[t], v) for _, t, v, _ in produced
    )
    assert summary.records == len(produced)
    # The outbox holds exactly what routing says, each row once.
    deliveries, dead = outbox_contents(path)
    want_deliveries, want_dead = expected_contents(records, compiled_routes(config))
    assert deliveries == want_deliveries
    assert dead == want_dead
    assert len(deliveries) >= 8
    # Each reason, on the record that earned it.
    reason_of = {
        r.key.decode(): {reason for (c, _, reason) in dead if c == (r.stream, r.position)}
        for r in records
        if r.key
    }
    assert reason_of["truncated"] == {"invalid_json"}
    assert reason_of["latin1_encoded"] == {"invalid_json"}
    assert reason_of["batch_array"] == {"invalid_json"}
    assert reason_of["tombstone"] == {"invalid_json"}
    assert reason_of["binary"] == {"invalid_json"}
    assert reason_of["order_oversized_note"] == {"too_large"}
    assert reason_of["unknown_event_type"] == {"no_route"}
    assert reason_of["no_type"] == {"no_route"}
    assert reason_of["charge_failed_amount_not_a_number"] == {"mapping_error"}
    assert reason_of["invoice_paid_without_email"] == {"payload_invalid"}
    assert reason_of["signup_without_email"] == {"payload_invalid"}
    assert reason_of["invoice_paid"] == set()
    # Offsets: committed up to the end of every partition, and nothing beyond.
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)
    # Metrics count what happened.
    assert value(metrics, "brew_bridge_events_consumed_total", {"source": "kafka"}) == len(produced)
    routed = sum(
        value(metrics, "brew_bridge_events_routed_total", {"source": "kafka", "route": r})
        for r in {route for route, _ in deliveries}
    )
    assert routed == len(deliveries)
    by_label = Counter((route or "", reason) for _, route, reason in dead)
    for (route, reason), n in by_label.items():
        labels = {"stage": "ingest", "route": route, "reason": reason}
        assert value(metrics, "brew_bridge_dead_letters_total", labels) == n
    outbox.close()
    assert not routing_children()


def routing_children() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "brew-bridge-routing"]


async def test_a_dead_routing_process_stops_the_source_and_loses_nothing(
    bridge_config: Build, broker: BrokerHandle
) -> None:
    config, topics = bridge_config(kafka={**FAST, "max_batch_records": 20, "routing_workers": 1})
    total = produce_events(broker, topics, example_events(300))

    class KillChild(KafkaObserver):
        stored = 0

        def on_batch_received(self, records: Any) -> None:
            children = routing_children()
            if self.stored >= 40 and children:  # two batches in, kill it mid-stream
                assert children[0].pid is not None
                os.kill(children[0].pid, signal.SIGKILL)

        def on_batch_stored(self, records: Any, result: Any) -> None:
            self.stored += len(records)

    observer = KillChild()
    source, outbox, _ = source_for(config, observer=observer)
    with pytest.raises(SourceError, match="routing process failed"):
        await source.drain()
    outbox.close()
    assert not routing_children()
    assert 0 < observer.stored < total
    # Committed never runs ahead of stored.
    committed = sum(
        c or 0 for t in topics.values() for c in broker.committed(config.kafka.group_id, t).values()
    )
    assert committed <= len(stored_records(config.outbox.path))

    # A restart (routing inline this time) reads on from the commit: each event once.
    inline = config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"routing_workers": 0})}
    )
    source, outbox, _ = source_for(inline)
    await source.drain()
    outbox.close()
    records = stored_records(config.outbox.path)
    assert len({(r.stream, r.position) for r in records}) == len(records) == total
    deliveries, dead = outbox_contents(config.outbox.path)
    assert (deliveries, dead) == expected_contents(records, compiled_routes(config))
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)


async def test_a_replay_stores_nothing_twice(bridge_config: Build, broker: BrokerHandle) -> None:
    """A second group reading everything again (as after a lost commit) only finds
    duplicates: no delivery and no dead letter is stored twice."""
    config, topics = bridge_config(kafka=FAST)
    produce_samples(broker, topics)
    first, outbox, _ = source_for(config)
    await first.drain()
    before = outbox_contents(config.outbox.path)

    replay_config = config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"group_id": config.kafka.group_id + "-2"})}
    )
    replay, outbox2, metrics = source_for(replay_config)
    summary = await replay.drain()

    assert outbox_contents(config.outbox.path) == before
    assert summary.inserted == 0
    assert summary.dead_letters == 0
    assert summary.duplicates == sum(before[0].values())
    duplicates = metrics.registry.get_sample_value(
        "brew_bridge_events_duplicate_total", {"source": "kafka", "route": "welcome"}
    )
    assert duplicates == 3  # the three signup samples
    outbox.close()
    outbox2.close()


async def test_no_route_drop_counts_without_storing(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    config, topics = bridge_config(kafka=FAST)
    config = config.model_copy(update={"no_route": "drop"})
    unknown = [("unknown", "payments", b'{"id": "evt_1", "type": "customer.updated"}', ())]
    for name, topic, value_, headers in unknown * 3:
        broker.produce(topics[topic], [value_], keys=[name.encode()], headers=[headers])
    source, outbox, metrics = source_for(config)

    summary = await source.drain()

    assert summary.dropped == 3
    assert stored_records(config.outbox.path) == []
    assert (
        value(
            metrics, "brew_bridge_events_dropped_total", {"source": "kafka", "reason": "no_route"}
        )
        == 3
    )
    assert committed_to_end(broker, config.kafka.group_id, topics["payments"])
    outbox.close()


class Recorder(KafkaObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_paused(self, backlog: int) -> None:
        self.events.append(("paused", backlog))

    def on_resumed(self, backlog: int) -> None:
        self.events.append(("resumed", backlog))

    def on_offsets_committed(self, positions: Any) -> None:
        self.events.append(("committed", dict(positions)))


async def test_backpressure_pauses_above_high_water_and_resumes_below_low_water(
    bridge_config: Build, broker: BrokerHandle
) -> None:
    config, topics = bridge_config(
        kafka={**FAST, "max_batch_records": 10}, outbox={"high_water": 30, "low_water": 10}
    )
    total = produce_events(broker, topics, example_events(140))
    recorder = Recorder()
    source, outbox, metrics = source_for(config, observer=recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    try:
        await wait_for(lambda: source.paused, 30, "the consumer to pause")
        assert value(metrics, "brew_bridge_consumer_paused") == 1
        # Paused: at most one batch beyond the mark, however much waits in Kafka.
        held = outbox.backlog()
        assert 30 <= held < 30 + 2 * 10
        # Absence can only be shown over time: several polls while paused store nothing.
        for _ in range(5):
            await asyncio.sleep(config.kafka.poll_timeout_ms / 1000)
            assert outbox.backlog() == held
        assert len(stored_records(config.outbox.path)) < total

        # The dispatcher's work, done by hand through the outbox API: fire everything.
        def fire_all() -> None:
            for row in outbox.claim_due(1e12, 1000, ordered=False):
                outbox.mark_fired(row.id, instance_id=None, run_ids=[], code="OK", now=0)

        def everything_stored() -> bool:
            fire_all()
            return len(stored_records(config.outbox.path)) == total

        await wait_for(everything_stored, 60, "all events stored after resuming")
        kinds = [k for k, _ in recorder.events if k in ("paused", "resumed")]
        assert kinds[:2] == ["paused", "resumed"]
        assert any(b < 10 for k, b in recorder.events if k == "resumed")
    finally:
        stop.set()
        await task
    assert value(metrics, "brew_bridge_consumer_paused") == 0
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)
    outbox.close()


@pytest.mark.parametrize("routing_workers", [0, 1])
async def test_run_commits_as_it_goes_and_stops_on_request(
    bridge_config: Build, broker: BrokerHandle, routing_workers: int
) -> None:
    # Pipelined, the last batch is stored on the next empty poll, not left in the child.
    config, topics = bridge_config(kafka={**FAST, "routing_workers": routing_workers})
    recorder = Recorder()
    source, outbox, _ = source_for(config, observer=recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    try:
        total = produce_events(broker, topics, example_events(60))
        await wait_for(
            lambda: len(stored_records(config.outbox.path)) == total, 30, "60 events stored"
        )
        await wait_for(
            lambda: all(
                committed_to_end(broker, config.kafka.group_id, t) for t in topics.values()
            ),
            10,
            "offsets committed",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert any(k == "committed" for k, _ in recorder.events)
    outbox.close()
    assert not routing_children()


async def test_a_lone_surrogate_never_stops_its_partition(
    bridge_config: Build, broker: BrokerHandle
) -> None:
    """40 good signups and one whose name was cut mid-emoji, on one partition: the 40
    are delivered, the poison is an unstorable dead letter, the offsets reach the end."""
    config, topics = bridge_config(kafka=FAST)
    signups = [e for e in example_events(400) if e.topic == "signups"][:41]
    assert len(signups) == 41
    poison = json.loads(signups[20].value)
    poison["data"]["first_name"] = "Ada \ud83d"  # what JavaScript writes for a cut emoji
    values = [e.value for e in signups]
    values[20] = json.dumps(poison).encode()  # ASCII: the surrogate travels escaped
    broker.produce(topics["signups"], values, partition=0)
    source, outbox, _ = source_for(config)
    summary = await source.drain()
    try:
        assert summary.records == 41
        assert outbox.backlog() == sum(e.deliveries for i, e in enumerate(signups) if i != 20)
        [dl] = outbox.dead_letters()
        assert dl.reason == "unstorable"
        assert dl.record is not None
        assert dl.record.position == "0:20"
    finally:
        outbox.close()
    assert committed_to_end(broker, config.kafka.group_id, topics["signups"])


def nothing_committed(broker: BrokerHandle, group: str, topics: dict[str, str]) -> bool:
    return all(
        offset is None for t in topics.values() for offset in broker.committed(group, t).values()
    )


@pytest.mark.slow
async def test_a_full_disk_pauses_consumption_without_committing_and_recovers(
    bridge_config: Build, broker: BrokerHandle, disk: Path
) -> None:
    config, topics = bridge_config(kafka=FAST, outbox={"path": str(disk / "outbox.db")})
    source, outbox, _metrics = source_for(config)
    stop = asyncio.Event()
    filler = fill(disk)
    total = produce_events(broker, topics, example_events(60))
    task = asyncio.create_task(source.run(stop))
    group = config.kafka.group_id
    try:
        # Nothing can be stored, so nothing may be committed, and the source lives on.
        for _ in range(6):
            await asyncio.sleep(0.5)  # absence can only be shown over time
            assert not task.done()
            assert nothing_committed(broker, group, topics)
        filler.unlink()
        await wait_for(
            lambda: all(committed_to_end(broker, group, t) for t in topics.values()),
            60,
            "the source to store everything once the disk freed",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        outbox.close()
    records = stored_records(config.outbox.path)
    assert len(records) == total
    assert len({(r.stream, r.position) for r in records}) == total


async def test_consumer_lag_is_the_end_minus_the_commit_and_grows_while_paused(
    bridge_config: Build, broker: BrokerHandle
) -> None:
    config, topics = bridge_config(
        kafka={**FAST, "max_batch_records": 10, "lag_interval_seconds": 0.2},
        outbox={"high_water": 30, "low_water": 10},
    )
    total = produce_events(broker, topics, example_events(140))
    source, outbox, metrics = source_for(config)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))

    def lags() -> dict[tuple[str, int], float]:
        return {
            (s.labels["stream"], int(s.labels["partition"])): s.value
            for family in metrics.registry.collect()
            if family.name == "brew_bridge_consumer_lag_records"
            for s in family.samples
        }

    def broker_lags() -> dict[tuple[str, int], float]:
        """The lag as the broker sees it: each partition's end minus the group's commit."""
        out: dict[tuple[str, int], float] = {}
        for topic in topics.values():
            committed = broker.committed(config.kafka.group_id, topic)
            for partition, end in broker.end_offsets(topic).items():
                out[(topic, partition)] = end - (committed.get(partition) or 0)
        return out

    try:
        await wait_for(lambda: source.paused, 30, "the consumer to pause")
        # Paused, nothing moves: the gauge settles on the broker's own numbers.
        await wait_for(lambda: lags() == broker_lags(), 30, "the lag gauge to match the broker")
        assert sum(lags().values()) >= total - (30 + 2 * 10)  # most of it still in Kafka
    finally:
        stop.set()
        await task
    # A stopped member reports no lag: the partitions are the next owner's to report.
    assert lags() == {}
    outbox.close()
