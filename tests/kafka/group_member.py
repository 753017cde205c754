"""A bare member of a consumer group: joins, takes its partitions, reads and commits
nothing, until it is killed (then it never leaves the group: its session times out).

    python group_member.py BOOTSTRAP GROUP_ID TOPICS OUT SESSION_TIMEOUT_MS

TOPICS is comma-separated. After every assignment OUT holds it as JSON, a list of
[topic, partition] pairs (replaced whole, so a reader never sees half of it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition


class Record(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, out: Path) -> None:
        self.out = out

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted([tp.topic, tp.partition] for tp in assigned)))
        os.replace(tmp, self.out)


async def member(bootstrap: str, group_id: str, topics: list[str], out: Path, session: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session,
        heartbeat_interval_ms=max(100, session // 6),
    )
    await consumer.start()
    consumer.subscribe(topics=topics, listener=Record(out))
    while True:  # stays in the group: polls (fetching nothing) until killed
        consumer.pause(*consumer.assignment())
        await consumer.getmany(timeout_ms=200)


def main(argv: Sequence[str]) -> None:
    bootstrap, group_id, topics, out, session = argv
    asyncio.run(member(bootstrap, group_id, topics.split(","), Path(out), int(session)))


if __name__ == "__main__":
    main(sys.argv[1:])
