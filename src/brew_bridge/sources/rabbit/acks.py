"""Acknowledgements of one channel's deliveries, sent as few frames as possible.

RabbitMQ acknowledges with ``multiple=True`` every delivery tag up to the one named, so
the tags settled together that close a run of the channel's oldest outstanding tags
leave as one ``basic.ack``. A tag settled while an older one is still held (not durable
yet) waits for it: an ack never covers a message that is not in the outbox. A reject
(our dead letters) goes at once and counts as settled for the run.
"""

from __future__ import annotations

import asyncio
import heapq

import structlog
from aio_pika.abc import AbstractIncomingMessage

from brew_bridge.sources.feed import Settle

__all__ = ["Acks"]

log = structlog.get_logger(__name__)


class Acks:
    """The outstanding deliveries of one subscription, by delivery tag."""

    def __init__(self) -> None:
        self._channel: object | None = None
        # A heap: the oldest tag first. Handlers run as tasks, so messages may be handed
        # over out of tag order, and a multiple ack must never pass an unsettled tag.
        self._outstanding: list[int] = []
        self._done: dict[int, AbstractIncomingMessage | None] = {}  # None: rejected
        self._flushing: asyncio.Task[None] | None = None

    def received(self, message: AbstractIncomingMessage) -> tuple[Settle, Settle]:
        """Track ``message``; its ``ack`` and ``reject``."""
        channel = message.channel
        if channel is not self._channel:
            # A new channel (a reconnect): the broker put back what the old one held,
            # and its tags mean nothing on this one.
            self._channel = channel
            self._outstanding.clear()
            self._done.clear()
        tag = message.delivery_tag or 0
        heapq.heappush(self._outstanding, tag)

        async def ack() -> None:
            if message.channel is self._channel:
                self._done[tag] = message
                self._schedule()

        async def reject() -> None:
            try:
                await message.reject(requeue=False)
            finally:
                if message.channel is self._channel:
                    self._done[tag] = None
                    self._schedule()

        return ack, reject

    def _schedule(self) -> None:
        # Once the settling code yields: every tag it settled in one go is in by then.
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        # Tags settled while an ack is on its way are taken in the next round.
        while (last := self._settled_run()) is not None:
            try:
                await last.ack(multiple=True)
            except Exception as exc:  # the broker delivers them again; the outbox dedupes
                log.warning("queue_ack_failed", delivery_tag=last.delivery_tag, error=str(exc))

    def _settled_run(self) -> AbstractIncomingMessage | None:
        """Take the run of oldest tags that are all settled; the newest acked among them."""
        last: AbstractIncomingMessage | None = None
        while self._outstanding and self._outstanding[0] in self._done:
            message = self._done.pop(heapq.heappop(self._outstanding))
            if message is not None:
                last = message
        return last

    async def drain(self) -> None:
        """Wait for the ack under way (before the connection closes)."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
