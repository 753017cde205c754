"""Broker probes: the exact end of a partition, which Tansu (the test broker) misreports,
and the members of a consumer group with what each holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

__all__ = ["GroupMember", "probe_end_offsets", "probe_group_members"]


async def probe_end_offsets(
    bootstrap_servers: str, partitions: Collection[TopicPartition], *, wait_seconds: float = 10.0
) -> dict[TopicPartition, int]:
    """The next offset to be written, per partition, exactly.

    ``ListOffsets`` is asked first; then the last record below that end is read back
    with a separate group-less consumer, and the end is one past the last offset seen.
    On Kafka the two agree. Tansu (the test broker) reports the end as one past the
    *first* offset of the last record batch, which would stop ``drain()`` early.
    """
    tps = list(partitions)
    if not tps:
        return {}
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        isolation_level="read_committed",  # the end the group consumer can reach
    )
    await probe.start()
    try:
        ends: dict[TopicPartition, int] = dict(await probe.end_offsets(tps))
        todo = {tp: end for tp, end in ends.items() if end > 0}
        if not todo:
            return ends
        probe.assign(list(todo))
        for tp, end in todo.items():
            probe.seek(tp, end - 1)
        deadline = time.monotonic() + wait_seconds
        while todo and time.monotonic() < deadline:
            fetched = await probe.getmany(*todo, timeout_ms=200)
            for tp, msgs in fetched.items():
                if msgs:
                    ends[tp] = max(ends[tp], msgs[-1].offset + 1)
            for tp in list(todo):
                if await probe.position(tp) >= ends[tp]:
                    del todo[tp]
        return ends
    finally:
        await probe.stop()


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group, as the broker describes it."""

    member_id: str
    client_id: str
    host: str
    # What the group assigned it; None when the broker does not say (Tansu).
    partitions: frozenset[TopicPartition] | None

    def describe(self) -> str:
        seen = ", ".join(x for x in (self.client_id, self.host.lstrip("/")) if x)
        return f"{self.member_id} ({seen})" if seen else self.member_id


async def probe_group_members(
    bootstrap_servers: str, group_id: str, *, wait_seconds: float = 10.0
) -> list[GroupMember] | None:
    """The members of ``group_id`` (``DescribeGroups``); None when the broker does not
    answer within ``wait_seconds``. For an error message: never raises a Kafka error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await asyncio.wait_for(admin.start(), wait_seconds)
        responses = await asyncio.wait_for(admin.describe_consumer_groups([group_id]), wait_seconds)
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    members: list[GroupMember] = []
    for response in responses:
        for group in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            if group[0] == 0 and group[1] == group_id:
                members.extend(_member(m) for m in group[5])
    return members


def _member(fields: Any) -> GroupMember:
    # (member_id, [group_instance_id (v4+),] client_id, client_host, metadata, assignment)
    member_id, *_, client_id, host, _metadata, assignment = fields
    partitions = None
    if assignment:
        with contextlib.suppress(Exception):  # a foreign protocol's bytes: not known
            decoded = ConsumerProtocolMemberAssignment.decode(assignment)
            partitions = frozenset(decoded.partitions())
    return GroupMember(str(member_id), client_id or "", host or "", partitions)
