"""``run --once`` ends when the group's commits reach the end of every partition of its
topics, not when this member's own share is read: partitions a killed member still
holds are waited for until its session times out and they come here; partitions a live
member keeps are named in a SourceError."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from kafka_helpers import committed_to_end, stored_records, wait_for

from brew_bridge.config import BridgeConfig, compiled_routes
from brew_bridge.errors import SourceError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.offsets import Behind, CatchUp, Partition
from brew_bridge.sources.kafka.probes import GroupMember
from brew_bridge.sources.kafka.source import (
    KafkaObserver,
    KafkaSource,
    _behind_message,
    build_kafka_source,
)
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle

Build = Callable[..., tuple[BridgeConfig, dict[str, str]]]
MEMBER = Path(__file__).with_name("group_member.py")
PARTITIONS = 4  # per topic, as the bridge_config fixture creates them
PER_PARTITION = 5
SESSION_MS = 6000

P = ("orders", 0)
Q = ("orders", 1)
R = ("orders", 2)


# -- the rule, without a broker --------------------------------------------------------


def test_own_partitions_are_done_at_their_end_and_others_at_the_groups_commit() -> None:
    c = CatchUp()
    assert c.missing_ends([P, Q, R]) == [P, Q, R]
    c.set_ends({P: 5, Q: 3, R: 0})
    assert c.missing_ends([P, Q, R]) == []
    assert not c.read_to_end({P: 4})
    assert c.read_to_end({P: 5})
    assert c.to_ask([Q, R]) == [Q]  # an empty partition is at its end whoever holds it
    assert c.behind({Q: None}) == [Behind(Q, None, 3)]
    assert c.behind({Q: 2}) == [Behind(Q, 2, 3)]
    assert c.behind({Q: 3}) == []


def test_an_end_is_read_once() -> None:
    c = CatchUp()
    c.set_ends({P: 5})
    c.set_ends({P: 9})  # produced since: left for the next run
    assert c.end(P) == 5


def test_the_wait_counts_time_without_progress() -> None:
    c = CatchUp()
    c.set_ends({P: 5, Q: 3, R: 4})
    behind = c.behind({Q: None, R: 1})
    assert c.waited(100.0, [P], behind) == 0.0
    assert c.waited(107.0, [P], behind) == 7.0
    # A commit moved: the clock starts again.
    assert c.waited(108.0, [P], c.behind({Q: 1, R: 1})) == 0.0
    assert c.waited(110.0, [P], c.behind({Q: 1, R: 1})) == 2.0
    # A partition came here (a rebalance): again.
    assert c.waited(111.0, [P, Q], c.behind({R: 1})) == 0.0
    # Busy reading its own: the wait starts afresh when it is done.
    c.busy()
    assert c.waited(130.0, [P, Q], c.behind({R: 1})) == 0.0


def test_commits_that_cannot_be_read_are_no_progress() -> None:
    c = CatchUp()
    c.set_ends({P: 5, Q: 3})
    assert c.waited(10.0, [P], None) == 0.0  # the first look failed: the clock starts
    assert c.waited(14.0, [P], None) == 4.0
    behind = c.behind({Q: 1})
    assert c.waited(15.0, [P], behind) == 0.0
    assert c.waited(19.0, [P], None) == 4.0  # unread again: still waiting since 15


def test_the_message_names_each_partition_and_its_holder_when_the_broker_says() -> None:
    behind = [Behind(Q, None, 3), Behind(R, 2, 4)]
    members = [
        GroupMember("me", "brew-bridge", "/10.0.0.1", frozenset({TopicPartition(*P)})),
        GroupMember("m-2", "brew-bridge", "/10.0.0.2", frozenset({TopicPartition(*Q)})),
        GroupMember("m-3", "other", "/10.0.0.3", frozenset({TopicPartition(*R)})),
    ]
    text = _behind_message("g", behind, members, "me", 12.0)
    assert "2 partition(s) are held by other live members of the consumer group 'g'" in text
    assert "orders:1 (committed nothing of 3), orders:2 (committed 2 of 4)" in text
    assert "member m-2 (brew-bridge, 10.0.0.2) holds orders:1" in text
    assert "member m-3 (other, 10.0.0.3) holds orders:2" in text
    assert "me (" not in text
    # Tansu names the members but not what they hold.
    unknown = [GroupMember("me", "", "", None), GroupMember("m-2", "", "", None)]
    text = _behind_message("g", behind, unknown, "me", 12.0)
    assert text.count("m-2") == 1
    assert "does not say which holds which" in text


# -- on the broker ---------------------------------------------------------------------


def fill_every_partition(broker: BrokerHandle, topics: dict[str, str]) -> int:
    """PER_PARTITION records in every partition of every topic (unrouted events: each
    is stored as a record with a no_route dead letter)."""
    for name in topics.values():
        for p in range(PARTITIONS):
            values = [
                json.dumps({"type": "test.unrouted", "n": f"{p}.{i}"}).encode()
                for i in range(PER_PARTITION)
            ]
            broker.produce(name, values, partition=p)
    return len(topics) * PARTITIONS * PER_PARTITION


def every_partition(topics: dict[str, str]) -> frozenset[Partition]:
    return frozenset((name, p) for name in topics.values() for p in range(PARTITIONS))


class Member:
    """A group member in a child process (tests/kafka/group_member.py)."""

    def __init__(self, broker: BrokerHandle, config: BridgeConfig, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(MEMBER),
                broker.bootstrap_servers,
                config.kafka.group_id,
                ",".join(sorted(compiled_routes(config).streams_of("kafka"))),
                str(out),
                str(SESSION_MS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def assignment(self) -> frozenset[Partition]:
        try:
            return frozenset((t, p) for t, p in json.loads(self.out.read_text()))
        except FileNotFoundError:
            return frozenset()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)  # no LeaveGroup: its session must expire
        self.proc.wait(10)


@contextlib.contextmanager
def member(broker: BrokerHandle, config: BridgeConfig, out: Path) -> Iterator[Member]:
    m = Member(broker, config, out)
    try:
        yield m
    finally:
        m.kill()
        if m.proc.stderr is not None:
            m.proc.stderr.close()


class Assignments(KafkaObserver):
    def __init__(self, on_first: Callable[[], None] = lambda: None) -> None:
        self.seen: list[frozenset[Partition]] = []
        self._on_first = on_first

    def on_assigned(self, partitions: frozenset[Partition]) -> None:
        self.seen.append(partitions)
        if len(self.seen) == 1:
            self._on_first()


def source_for(
    config: BridgeConfig, observer: KafkaObserver, path: Path | None = None
) -> tuple[KafkaSource, Outbox]:
    outbox = Outbox.open(path or config.outbox.path, synchronous=config.outbox.synchronous)
    routes = compiled_routes(config)
    return build_kafka_source(config, routes, outbox, Metrics(), observer=observer), outbox


@pytest.mark.slow
async def test_once_waits_for_the_partitions_of_a_killed_member_and_reads_them(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    """The first member takes every partition, reads and commits nothing and is killed
    once the second member got its share: the second one's drain must not end with the
    killed member's partitions unread, and ends once its session expired and they were
    handed over."""
    config, topics = bridge_config(
        kafka={"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": 1000}
    )
    total = fill_every_partition(broker, topics)
    everything = every_partition(topics)
    killed_at: list[float] = []
    with member(broker, config, tmp_path / "member.json") as first:
        await wait_for(lambda: first.assignment() == everything, 60, "the first member to take all")

        def kill_first() -> None:
            first.kill()
            killed_at.append(time.monotonic())

        seen = Assignments(on_first=kill_first)
        source, outbox = source_for(config, seen)
        try:
            summary = await asyncio.wait_for(source.drain(), 100)
        finally:
            outbox.close()

    # The premise: the second member first held only a part, the killed one the rest.
    assert killed_at
    assert seen.seen[0] < everything
    # It ended only when every partition was committed to its end, by itself.
    assert seen.seen[-1] == everything
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)
    records = stored_records(config.outbox.path)
    assert len(records) == len({(r.stream, r.position) for r in records}) == total
    assert summary.records == total


@pytest.mark.slow
async def test_once_names_the_partitions_a_live_member_keeps(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    config, topics = bridge_config(
        kafka={"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": 1000}
    )
    fill_every_partition(broker, topics)
    everything = every_partition(topics)
    with member(broker, config, tmp_path / "member.json") as other:
        await wait_for(lambda: other.assignment() == everything, 60, "the other member to take all")
        seen = Assignments()
        source, outbox = source_for(config, seen)
        started = time.monotonic()
        try:
            with pytest.raises(SourceError) as raised:
                # Patience: 2 s plus the 6 s session, without progress.
                await asyncio.wait_for(source.drain(assignment_timeout=2.0), 90)
        finally:
            outbox.close()
        waited = time.monotonic() - started
        assert other.alive()
        held = other.assignment()

    assert held
    assert held < everything
    message = str(raised.value)
    named = set(re.findall(r"(\S+):(\d+) \(committed", message))
    assert named == {(t, str(p)) for t, p in held}
    assert f"committed nothing of {PER_PARTITION}" in message
    assert config.kafka.group_id in message
    assert waited >= 2.0 + SESSION_MS / 1000
    # What it read of its own share is stored and committed before it gave up.
    mine = everything - held
    assert seen.seen[-1] == mine
    for topic in topics.values():
        committed = broker.committed(config.kafka.group_id, topic)
        for p, c in committed.items():
            assert c == (PER_PARTITION if (topic, p) in mine else None)
    assert len(stored_records(config.outbox.path)) == len(mine) * PER_PARTITION


async def test_two_members_running_once_together_both_end(
    bridge_config: Build, broker: BrokerHandle, tmp_path: Path
) -> None:
    """Started together, they share the partitions (on Tansu, every time so far): each
    reads its share and waits for the other's commits; neither gives up, and together
    they store every record once."""
    config, topics = bridge_config(
        kafka={"session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": 1000}
    )
    total = fill_every_partition(broker, topics)
    a_seen, b_seen = Assignments(), Assignments()
    a, a_outbox = source_for(config, a_seen, tmp_path / "a.db")
    b, b_outbox = source_for(config, b_seen, tmp_path / "b.db")
    try:
        await asyncio.wait_for(asyncio.gather(a.drain(), b.drain()), 100)
    finally:
        a_outbox.close()
        b_outbox.close()
    for topic in topics.values():
        assert committed_to_end(broker, config.kafka.group_id, topic)
    stored = [
        (r.stream, r.position)
        for path in (tmp_path / "a.db", tmp_path / "b.db")
        for r in stored_records(path)
    ]
    assert len(set(stored)) == total
