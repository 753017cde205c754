"""The RabbitMQ the tests publish to and inspect, with aio-pika (not through the bridge)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aio_pika

URL = "amqp://guest:guest@127.0.0.1:5672/"


class RabbitBroker:
    kind = "rabbit"

    def __init__(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        self.connection = connection
        self.declared: set[str] = set()

    def settings(self, stream: str) -> dict[str, Any]:
        return {"url": URL, "queue": stream, "prefetch_count": 200, "max_batch_records": 50}

    def member_settings(self, member: str) -> dict[str, Any]:
        return {}  # every consumer of a queue shares it

    async def publish(
        self, stream: str, values: Iterable[bytes], headers: Iterable[Mapping[str, str]] = ()
    ) -> None:
        async with self.connection.channel() as channel:
            if stream not in self.declared:
                await channel.declare_queue(stream, durable=True)
                self.declared.add(stream)
            header_list = list(headers)
            for i, value in enumerate(values):
                h = header_list[i] if i < len(header_list) else {}
                await channel.default_exchange.publish(
                    aio_pika.Message(value, headers=dict(h), delivery_mode=2), routing_key=stream
                )

    async def backlog(self, stream: str, group: str = "") -> int:
        """Messages ready in the queue: with no consumer attached, every message not
        acknowledged (RabbitMQ puts what a closed channel held back)."""
        async with self.connection.channel() as channel:
            queue = await channel.declare_queue(stream, durable=True, passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def cleanup(self) -> None:
        async with self.connection.channel() as channel:
            for stream in self.declared:
                await channel.queue_delete(stream)
