"""The Protocols between the parts: what the core asks of a source, a target and a sink.

The core (``brew_bridge.core``) names no broker and no vendor; it sees only these. A new
source, target or sink is a new package beside the core that satisfies one of them.

* a **pull source** (``sources/kafka``) reads batches and hands each to
  :meth:`~brew_bridge.core.intake.Intake.submit` with an ack; it lets go of the batch
  (commits an offset, acks a message) only in that ack, once the batch is durable;
* a **push source** (webhooks) calls :meth:`PushIntake.store` and answers its sender
  only after it returns;
* a **target** (``targets/brew``) turns a delivery into run ids and runs into statuses;
* a **result sink** (``sinks/kafka``) is told every run's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from brew_bridge.core.intake import IntakeSummary
    from brew_bridge.core.retry import Disposition
    from brew_bridge.events import FireAccepted, RunRead, SourceRecord
    from brew_bridge.store import DeliveryRow, RunRecord, StoreResult

__all__ = ["Clock", "PullSource", "PushIntake", "ReadSlots", "ResultSink", "Target"]

T = TypeVar("T")


class Clock(Protocol):
    """Epoch seconds now (``time.time``); tests pass a fake."""

    def __call__(self) -> float: ...


class PullSource(Protocol):
    """A consumer of a log or a queue, feeding an intake."""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then acknowledge what is durable and leave."""

    async def drain(self) -> IntakeSummary:
        """Consume until caught up with the end of the stream (``run --once``)."""
        ...


class PushIntake(Protocol):
    """What a push source needs of the intake."""

    async def store(self, records: Sequence[SourceRecord]) -> StoreResult:
        """Route and store ``records``; once this returns they are durable."""
        ...

    async def backpressure(self) -> bool:
        """Whether to refuse new records for now (the outbox is above its high-water mark)."""
        ...


class ReadSlots(Protocol):
    """The poller's read budget, as a target sees it.

    ``read`` takes a slot (or ends the cycle when the share is spent), counts the read,
    makes it, feeds the outcome to the auth gate, and re-raises only an ``ApiError`` 404
    that is not an ``AuthError`` (the target judges what it says about the run); any
    other failure, an ``AuthError`` of any status included, ends the cycle (the runs are
    read again next cycle).
    """

    async def read(self, mode: str, call: Callable[[], Awaitable[T]]) -> T: ...

    def read_at(self, at: float) -> None:
        """Ask for the next cycle at ``at`` (epoch seconds) when that comes before the
        interval's (the target holds its reads until runs can have ended)."""
        ...


class Target(Protocol):
    """A product that accepts work now and finishes it later (Brew first)."""

    name: str  # the target's name in the config, and the ``target`` of its deliveries
    title: str  # how operators call it, for readiness and logs
    # Runs a delivery may start after its first, when the target cancels stuck ones
    # (:attr:`RunRead.refire`); 0 for a target that never does.
    max_refires: int

    def classify(self, outcome: BaseException, delivery: DeliveryRow) -> Disposition:
        """What a failed fire of ``delivery`` means: retry, wait for publishing, auth,
        unknown outcome, or reject."""
        ...

    def auth_hint(self, status: int, code: str) -> str:
        """The one-sentence fix for an answer that opened the auth gate (an
        ``AuthError``: a 401/403, or an answer about the setup)."""
        ...

    async def fire(self, delivery: DeliveryRow) -> FireAccepted:
        """Fire once with the delivery's Idempotency-Key; raises a ``TargetError``."""
        ...

    def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        """Read what is due among ``runs`` (every live run not past its deadline), on as
        few reads as it can; after each read, yield the runs it showed."""
        ...

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        """Read one run by id (with its node logs when asked); None when the target does
        not know it."""
        ...

    async def find_runs(
        self, delivery: DeliveryRow, since: float, until: float
    ) -> Sequence[str] | None:
        """The runs the target started for ``delivery`` between ``since`` and ``until``
        (its key is forgotten, so a fire could not say); None when it cannot tell."""
        ...

    async def cancel(self, run: RunRecord, reason: str) -> None:
        """Ask the target to stop a run; raises a ``TargetError`` (404 / 409: it ended)."""
        ...


class ResultSink(Protocol):
    """Where each run's end goes besides the outbox (the Kafka result topic)."""

    async def publish_result(
        self,
        run: RunRecord,
        *,
        status: str,
        finished_at: float,
        error: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        """The run's end; the run carries its target, route, key and event id; ``output``
        what it produced, when the target says."""
