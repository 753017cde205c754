"""Accepted fires recorded together: one outbox transaction for the fires that finish
while the previous one commits (group commit).

With ``synchronous=FULL`` every transaction is an fsync (~0.7 ms on this machine's
disk), and the outbox takes one writer at a time: one transaction per accepted fire
made the fsyncs a queue that every fire stood in, at full rate the larger part of the
event -> fire latency. A fire's caller still returns only once its mark is durable.
"""

from __future__ import annotations

import asyncio

from ..errors import StoreError
from ..store import FiredMark, Outbox

__all__ = ["FiredMarks"]


class FiredMarks:
    """Writes :class:`~brew_bridge.store.FiredMark` s in shared transactions."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._waiting: list[tuple[FiredMark, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, mark: FiredMark) -> None:
        """Returns once ``mark`` is durable; raises :class:`StoreError` when it is not
        (the store failed, or the row was not ``firing``)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((mark, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="fired-marks")
        # shield: a fire cancelled at stop leaves its mark to be written with the others;
        # the fire happened, and the transaction is not the fire's to cancel.
        await asyncio.shield(done)

    async def flush(self) -> None:
        """Wait until every mark handed over so far is written (or failed)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                errors = await asyncio.to_thread(
                    self._outbox.mark_fired_many, [mark for mark, _ in group]
                )
            except Exception as exc:
                failed = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                errors = [failed] * len(group)
            for (_, done), error in zip(group, errors, strict=True):
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
