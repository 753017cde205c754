"""Broker probes: the exact end of a partition, which Tansu (the test broker) misreports."""

from __future__ import annotations

import time
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["probe_end_offsets"]


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
