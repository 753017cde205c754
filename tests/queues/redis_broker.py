"""The Redis the tests publish to and inspect, with redis-py (not through the bridge)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

URL = "redis://127.0.0.1:6379/0"


class RedisBroker:
    kind = "redis"

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.streams: set[str] = set()

    def settings(self, stream: str) -> dict[str, Any]:
        self.streams.add(stream)
        # A short polling interval: the drain's idle second is not spent in one read.
        return {"url": URL, "stream": stream, "max_batch_records": 50, "polling_interval_ms": 100}

    def member_settings(self, member: str) -> dict[str, Any]:
        return {"consumer": member}  # each member of a group has a name of its own

    async def publish(
        self, stream: str, values: Iterable[bytes], headers: Iterable[Mapping[str, str]] = ()
    ) -> None:
        self.streams.add(stream)
        header_list = list(headers)
        async with self.client.pipeline(transaction=False) as pipe:
            for i, value in enumerate(values):
                h = header_list[i] if i < len(header_list) else {}
                pipe.xadd(stream, {**h, "value": value})
            await pipe.execute()

    async def backlog(self, stream: str, group: str) -> int:
        """Entries the group has not acknowledged: its pending entries, and those after
        its last delivered id (all of them when the group does not exist yet)."""
        try:
            groups = await self.client.xinfo_groups(stream)
        except ResponseError:  # no such stream
            return 0
        for info in groups:
            if _text(info["name"]) == group:
                later = await self.client.xrange(stream, min=f"({_text(info['last-delivered-id'])}")
                return int(info["pending"]) + len(later)
        return int(await self.client.xlen(stream))

    async def cleanup(self) -> None:
        if self.streams:
            await self.client.delete(*self.streams)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
