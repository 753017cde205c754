"""Pending entries taken back: this member's own once at start (a restart after a
crash under the same name), other members' once idle (a member that died)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Final, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from brew_bridge.config.queues import RedisSourceConfig
from brew_bridge.sources.feed import Feed
from brew_bridge.sources.redis.acks import Acks
from brew_bridge.sources.redis.record import SOURCE

__all__ = ["Claimer"]

log = structlog.get_logger(__name__)

# The longest wait between two sweeps for other members' idle entries.
_MAX_SWEEP_SECONDS: Final = 5.0


class Claimer:
    """The group made at ``start_at``, and the pending entries taken back: this
    member's own once at start, other members' idle ones periodically."""

    def __init__(self, name: str, config: RedisSourceConfig, feed: Feed, acks: Acks) -> None:
        self._name = name  # the record's stream; logs say redis.<name>
        self._where = f"{SOURCE}.{name}"
        self._config = config
        self._feed = feed
        self._acks = acks
        self._task: asyncio.Task[None] | None = None

    async def prepare(self, client: Redis) -> str | None:
        """Before the ``>`` reader starts: the group, and the last id this member left
        pending (what is pending now is a former life's)."""
        self._acks.attach(client)
        await self._make_group(client)
        return await self._own_last(client)

    def start(self, client: Redis, own_last: str | None) -> None:
        self._task = asyncio.create_task(self._claim(client, own_last))

    async def stop(self) -> None:
        """No more claims; every ``XACK`` under way sent (before the connection closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._acks.drain()

    async def _make_group(self, client: Redis) -> None:
        """The group at ``start_at`` (FastStream would make it at ``$``: only new entries)."""
        start = "0" if self._config.start_at == "earliest" else "$"
        try:
            await client.xgroup_create(
                self._config.stream, self._config.group, id=start, mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _own_last(self, client: Redis) -> str | None:
        """The last id pending for this member, None when nothing is."""
        config = self._config
        mine = await client.xpending_range(
            config.stream, config.group, min="-", max="+", count=1, consumername=config.member
        )
        if not mine:
            return None
        summary = await client.xpending(config.stream, config.group)
        return _entry_id(summary["max"])

    async def _claim(self, client: Redis, own_last: str | None) -> None:
        try:
            if own_last is not None and not await self._own_pending(client, own_last):
                return
        except Exception as exc:  # left pending: the sweep takes them once idle
            log.warning("redis_claim_failed", source=self._where, error=str(exc))
        sweep = min(self._config.min_idle_seconds / 2, _MAX_SWEEP_SECONDS)
        while True:
            try:
                taken = await self._sweep(client)
            except Exception as exc:  # the connection comes back; FastStream's reader logs too
                log.warning("redis_claim_failed", source=self._where, error=str(exc))
                taken = 0
            if taken < 0:
                return  # the feed is closing
            if taken == 0:
                await asyncio.sleep(sweep)

    async def _own_pending(self, client: Redis, last: str) -> bool:
        """This member's entries pending at start, up to ``last`` (a crash before their
        acks); False when the feed closed meanwhile."""
        config = self._config
        after = "0"
        while True:
            answer = await client.xreadgroup(
                config.group,
                config.member,
                {config.stream: after},
                count=config.max_batch_records,
            )
            entries = [
                e
                for _, batch in cast("_ReadAnswer", answer)
                for e in batch
                if _id_key(e[0]) <= _id_key(last)
            ]
            if not entries:
                return True
            after = _entry_id(entries[-1][0])
            if not await self._hand_over(client, entries):
                return False

    async def _sweep(self, client: Redis) -> int:
        """One pass of ``XAUTOCLAIM`` over the group's pending entries: how many were
        taken, -1 when the feed is closing."""
        config = self._config
        start, taken = "0-0", 0
        while True:
            answer = await client.xautoclaim(
                config.stream,
                config.group,
                config.member,
                min_idle_time=int(config.min_idle_seconds * 1000),
                start_id=start,
                count=config.max_batch_records,
            )
            start, entries = _entry_id(answer[0]), answer[1]
            if entries:
                log.info("redis_entries_claimed", source=self._where, entries=len(entries))
                if not await self._hand_over(client, entries):
                    return -1
                taken += len(entries)
            if start == "0-0":
                return taken

    async def _hand_over(
        self, client: Redis, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]]
    ) -> bool:
        present = [(i, f) for i, f in entries if f]
        gone = [i for i, f in entries if not f]  # trimmed away while pending: nothing to read
        if gone:
            await client.xack(self._config.stream, self._config.group, *gone)
        return await self._feed.put(self._acks.delivered(self._name, self._config, present))


# What XREADGROUP answers (RESP2, FastStream's connection): per stream, its entries
# (fields None: deleted meanwhile).
_ReadAnswer = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]


def _entry_id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(value: bytes | str) -> tuple[int, int]:
    millis, _, seq = _entry_id(value).partition("-")
    return int(millis), int(seq or 0)
