"""Acknowledgements of stream entries, gathered into one ``XACK`` per settled batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import structlog
from redis.asyncio import Redis

from brew_bridge.config.queues import RedisSourceConfig
from brew_bridge.sources.feed import Delivered, Settle
from brew_bridge.sources.redis.record import redis_record

__all__ = ["Acks"]

log = structlog.get_logger(__name__)


class Acks:
    """The ids settled together, sent as one ``XACK`` once the settling code yields."""

    def __init__(self, stream: str, group: str) -> None:
        self._stream = stream
        self._group = group
        self._client: Redis | None = None
        self._ids: list[bytes] = []
        self._sending: set[asyncio.Task[None]] = set()

    def attach(self, client: Redis) -> None:
        self._client = client

    def settler(self, entry_id: bytes) -> Settle:
        async def settle() -> None:
            if not self._ids:
                task = asyncio.get_running_loop().create_task(self._send())
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            self._ids.append(entry_id)

        return settle

    async def _send(self) -> None:
        ids, self._ids = self._ids, []
        if self._client is None or not ids:
            return
        try:
            await self._client.xack(self._stream, self._group, *ids)
        except Exception as exc:  # unacknowledged: claimed again later, the outbox dedupes
            log.warning("queue_ack_failed", stream=self._stream, entries=len(ids), error=str(exc))

    async def drain(self) -> None:
        """Wait for every ``XACK`` under way (before the connection closes)."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def delivered(
        self,
        name: str,
        config: RedisSourceConfig,
        entries: Iterable[tuple[bytes, Mapping[bytes, bytes]]],
    ) -> list[Delivered]:
        """``entries`` as the feed holds them: records of source ``name``, each
        acknowledged (``reject`` too: Redis has no dead-letter route) through this."""
        items = []
        for entry_id, fields in entries:
            record = redis_record(
                name, entry_id, fields, value_field=config.value_field, key_field=config.key_field
            )
            settle = self.settler(entry_id)
            items.append(Delivered(record, settle, settle))
        return items
