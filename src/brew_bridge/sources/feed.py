"""What every queue source shares: a FastStream broker's messages, stored in batches and
acknowledged to the broker only once they are durable (invariant 1).

A broker's subscriber (RabbitMQ, NATS JetStream, Redis Streams; each in its own package)
turns what it receives into :class:`Delivered` items and hands them to :meth:`Feed.put`.
The feed's pump takes what is waiting (at most ``max_batch_records``) as one batch to
:meth:`Intake.submit`; while that batch's COMMIT runs, the next messages gather, so
batches grow with the load and there is no linger delay. When nothing waits, the pump
flushes the intake, so the last batch is acknowledged at once.

Each item is acknowledged once its batch is durable: ``ack`` for a record that became a
delivery (or a duplicate, or was dropped), ``reject`` for one that became one of our dead
letters (the broker's own dead-letter route, when the source has one).

Backpressure (invariant 6): when the intake says pause, :meth:`put` waits (so the
subscriber stops taking messages: RabbitMQ's prefetch, a pull consumer's next fetch
wait for it) until the intake says resume. :meth:`put` also waits while ``capacity``
items are waiting: memory stays bounded whatever the broker holds.

A failing outbox (a full disk, a lock): nothing of the batch is acknowledged, and every
batch not acknowledged yet goes back in front of the queue to be stored again once the
outbox works (a broker does not deliver again what a live consumer holds).

Stopping: the pump stores and acknowledges every batch submitted, then :meth:`close`
releases the subscribers still waiting in :meth:`put`; what they hold is never
acknowledged, so the broker delivers it again (to this bridge after a restart or to
another member) and the outbox refuses what was stored already.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from brew_bridge.core.intake import Intake, IntakeSummary
from brew_bridge.errors import StoreError
from brew_bridge.events import SourceRecord
from brew_bridge.store import StoreResult

__all__ = ["Delivered", "Feed", "Settle"]

log = structlog.get_logger(__name__)

Settle = Callable[[], Awaitable[None]]

# While paused: how often the outbox backlog is counted again.
_PAUSED_RECHECK_SECONDS = 0.5
# While the outbox cannot store a batch: the wait before trying again.
_STORE_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message as the feed holds it: the record, and how to let go of it."""

    record: SourceRecord
    ack: Settle
    reject: Settle


class Feed:
    """The pump between one broker subscription and its intake."""

    def __init__(
        self,
        intake: Intake,
        *,
        name: str,
        max_batch_records: int,
        capacity: int | None = None,
    ) -> None:
        self._intake = intake
        self._name = name
        self._max_batch = max_batch_records
        self._capacity = capacity if capacity is not None else 2 * max_batch_records
        self._items: deque[Delivered] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Condition()
        self._closing = False
        self._unflushed = False
        # Batches submitted and not acknowledged yet, by number (in submission order).
        self._unacked: dict[int, Sequence[Delivered]] = {}
        self._batches = 0
        self.last_arrival = asyncio.get_running_loop().time()

    @property
    def summary(self) -> IntakeSummary:
        return self._intake.summary

    @property
    def waiting(self) -> int:
        """Items handed over and not in a batch yet."""
        return len(self._items)

    async def put(self, items: Sequence[Delivered]) -> bool:
        """Hand ``items`` over; waits while paused or full. False when closing: the items
        were not taken (the caller leaves them unacknowledged)."""
        async with self._room:
            await self._room.wait_for(self._has_room)
            if self._closing:
                return False
            self._items.extend(items)
        self.last_arrival = asyncio.get_running_loop().time()
        self._arrived.set()
        return True

    def _has_room(self) -> bool:
        return self._closing or (not self._intake.paused and len(self._items) < self._capacity)

    async def close(self) -> None:
        """Let every waiting :meth:`put` return False; what was not stored stays unacked."""
        self._closing = True
        async with self._room:
            self._room.notify_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Store what arrives until ``stop``; then store and acknowledge what was submitted."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                try:
                    if not self._items:
                        await self._idle(stopping)
                        continue
                    await self._submit_next()
                    if await self._intake.backpressure():
                        await self._paused(stop)
                except StoreError as exc:
                    await self._store_failed(exc, stop)
            with contextlib.suppress(StoreError):
                await self._intake.flush()
        finally:
            stopping.cancel()
            await self.close()

    async def _submit_next(self) -> None:
        take = min(self._max_batch, len(self._items))
        batch = [self._items.popleft() for _ in range(take)]
        self._batches += 1
        number = self._batches
        self._unacked[number] = batch

        async def settle(result: StoreResult) -> None:
            del self._unacked[number]
            await _settle(batch, result)

        await self._room_changed()
        await self._intake.submit([d.record for d in batch], settle)
        self._unflushed = True

    async def _store_failed(self, exc: StoreError, stop: asyncio.Event) -> None:
        """The outbox could not store a batch: every batch handed over and not acknowledged
        goes back in front of the queue (the broker would not deliver it again while this
        consumer lives), to be submitted again once the outbox works; the outbox refuses
        whatever of it was stored after all."""
        taken_back = [item for batch in self._unacked.values() for item in batch]
        self._unacked.clear()
        self._items.extendleft(reversed(taken_back))
        self._unflushed = False
        log.warning(
            "queue_store_failed",
            source=self._name,
            error=str(exc),
            held=len(self._items),
            retry_in=_STORE_RETRY_SECONDS,
        )
        await _wait(stop, _STORE_RETRY_SECONDS)

    async def _idle(self, stopping: asyncio.Task[bool]) -> None:
        """Nothing waits: acknowledge the last batch now, then wait for the next items."""
        if self._unflushed:
            self._unflushed = False
            await self._intake.flush()
            return
        self._arrived.clear()
        if self._items:
            return
        arrived = asyncio.create_task(self._arrived.wait())
        try:
            await asyncio.wait({arrived, stopping}, return_when="FIRST_COMPLETED")
        finally:
            arrived.cancel()

    async def _paused(self, stop: asyncio.Event) -> None:
        """Above the high-water mark: store what was submitted, then wait for room."""
        await self._intake.flush()
        self._unflushed = False
        while not stop.is_set() and await self._intake.backpressure():
            await _wait(stop, _PAUSED_RECHECK_SECONDS)
        await self._room_changed()

    async def _room_changed(self) -> None:
        async with self._room:
            self._room.notify_all()


async def _settle(batch: Sequence[Delivered], result: StoreResult) -> None:
    """Acknowledge a durable batch: reject what became our dead letters, ack the rest."""
    dead = result.dead_lettered
    for item in batch:
        settle_one = item.reject if item.record.position in dead else item.ack
        try:
            await settle_one()
        except Exception as exc:  # the broker delivers it again; the outbox dedupes
            log.warning("queue_ack_failed", position=item.record.position, error=str(exc))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
