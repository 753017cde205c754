"""A queue source: one FastStream broker, one subscription, one feed, one intake.

The kinds (``sources/rabbit``, ``sources/nats``, ``sources/redis``) build the broker and
its subscriber; this runs them: connect, pump until stopped, then store and acknowledge
what was submitted before the broker is closed (what is not acknowledged by then the
broker delivers again).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from brew_bridge.core.intake import Intake, IntakeSummary
from brew_bridge.errors import SourceError
from brew_bridge.sources.feed import Feed

__all__ = ["QueueSource", "no_decoding"]

log = structlog.get_logger(__name__)

# --once: the queue counts as drained when nothing arrived for this long.
DRAIN_IDLE_SECONDS = 1.0


async def no_decoding(message: Any) -> None:
    """A subscriber's decoder that decodes nothing: the handlers read the raw messages,
    and FastStream's default would parse every body as JSON first, for nothing (routing
    parses it, and reports what does not parse)."""


class QueueSource:
    """A :class:`~brew_bridge.typing.PullSource` over a FastStream broker.

    ``broker`` is a FastStream broker with the subscription already declared; ``feed``
    receives what its handler hands over; ``where`` names the source in errors and logs
    (``rabbit.signups at amqp://host:5672/``: never a password).
    """

    def __init__(
        self,
        name: str,
        broker: Any,
        feed: Feed,
        intake: Intake,
        *,
        where: str,
        settled: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.name = name
        self.broker = broker
        self.feed = feed
        self._intake = intake
        self._where = where
        # --once also waits for this: the broker holds nothing more for the group (a
        # crashed member's unacknowledged messages, delivered again after a timeout).
        self._settled = settled
        self.connected = False

    async def run(self, stop: asyncio.Event) -> None:
        async with self._intake:
            await self._connect()
            try:
                log.info("queue_source_consuming", source=self.name, at=self._where)
                await self.feed.run(stop)
            finally:
                await self.feed.close()
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                self.connected = False

    async def drain(self) -> IntakeSummary:
        """Consume until nothing arrived for a second, everything taken is stored and
        ``settled`` (when given) says the broker holds nothing more for the group."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def idle() -> None:
            while not stop.is_set():
                quiet = loop.time() - self.feed.last_arrival
                if (
                    self.connected
                    and quiet >= DRAIN_IDLE_SECONDS
                    and not self.feed.waiting
                    and (self._settled is None or await self._settled())
                ):
                    stop.set()
                    return
                await asyncio.sleep(max(0.05, DRAIN_IDLE_SECONDS - quiet))

        watcher = asyncio.create_task(idle())
        try:
            await self.run(stop)
        finally:
            watcher.cancel()
        return self.feed.summary

    async def _connect(self) -> None:
        try:
            await self.broker.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise SourceError(
                f"source {self.name}: cannot consume from {self._where}: "
                f"{type(exc).__name__}: {_without_urls(str(exc))}"
            ) from None
        self.connected = True
        self.feed.last_arrival = asyncio.get_running_loop().time()


def _without_urls(text: str) -> str:
    """A driver's message with any ``scheme://user:pass@`` credentials cut out."""
    return re.sub(r"([a-z][a-z0-9+.-]*://)[^@/\s]*@", r"\1***@", text)
