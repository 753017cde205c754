"""The NATS JetStream the tests publish to and inspect, with nats-py (not through the bridge)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.js.api import StreamConfig

URL = "nats://127.0.0.1:4222"
# Short enough that a test sees a crashed bridge's messages again soon, long enough
# that a batch is stored and acknowledged well within it on a busy machine.
ACK_WAIT_SECONDS = 2.0


def subject_of(stream: str) -> str:
    return f"bridge.{stream}"


class NatsBroker:
    kind = "nats"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.js = client.jetstream()
        self.declared: set[str] = set()

    def settings(self, stream: str) -> dict[str, Any]:
        self.declared.add(stream)  # the bridge may create it: delete it after the test
        return {
            "url": URL,
            "stream": stream,
            "subjects": [subject_of(stream)],
            "durable": "brew-bridge",
            "ack_wait_seconds": ACK_WAIT_SECONDS,
            "fetch_timeout_seconds": 0.2,
            "max_batch_records": 50,
        }

    def member_settings(self, member: str) -> dict[str, Any]:
        return {}  # every member of a durable pull consumer shares it

    async def declare(self, stream: str) -> None:
        await self.js.add_stream(StreamConfig(name=stream, subjects=[subject_of(stream)]))
        self.declared.add(stream)

    async def publish(
        self, stream: str, values: Iterable[bytes], headers: Iterable[Mapping[str, str]] = ()
    ) -> None:
        if stream not in self.declared:
            await self.declare(stream)
        else:
            try:
                await self.js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                await self.declare(stream)
        header_list = list(headers)
        for i, value in enumerate(values):
            h = dict(header_list[i]) if i < len(header_list) else None
            await self.js.publish(subject_of(stream), value, stream=stream, headers=h or None)

    async def backlog(self, stream: str, group: str = "brew-bridge") -> int:
        """Messages the durable has not delivered yet plus those delivered and not
        acknowledged (held, or held by a bridge that died)."""
        info = await self.js.consumer_info(stream, group)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def cleanup(self) -> None:
        for stream in self.declared:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(stream)
