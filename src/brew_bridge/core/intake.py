"""The intake every source feeds: route -> stage -> commit -> acknowledge, with backpressure.

When a batch is acknowledged, every record of it is durably a delivery, a dead letter,
or counted as dropped, so only then may the source let go of it (commit an offset, ack
a message, answer a webhook 2xx): invariant 1. Two ways in:

* a **pull source** (a consumer of a log or a queue) calls :meth:`Intake.submit` with a
  batch and an ``ack`` coroutine. The batch is routed (inline, or in a routing child
  while this process stores the previous batch), written in ONE outbox transaction, and
  that transaction's COMMIT (mostly the WAL fsync, which frees the GIL) runs on one
  committer thread while the source fetches the next batch. ``ack`` runs once the
  COMMIT returned, batches in the order they were submitted. :meth:`flush` makes every
  batch submitted so far durable and acknowledged (on revocation, at stop, when idle);
* a **push source** (webhooks) calls :meth:`Intake.store` and answers once it returns.

Routing is pure and meant never to raise; if it does anyway (a bug), that record
becomes a ``mapping_error`` dead letter instead of blocking its stream (invariant 5).

Backpressure (invariant 6): :meth:`backpressure` answers whether the source should
pause: at ``high_water`` rows still to fire it says pause, below ``low_water`` resume.

A crash at any point loses nothing: before the outbox COMMIT nothing is stored and
nothing acknowledged; between the two, the source delivers the batch again and the
outbox refuses the duplicates (records, deliveries and ingest dead letters are unique).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from ..errors import StoreError
from ..events import NewDeadLetter, Reason, Routed, SourceRecord
from ..observe.metrics import Metrics
from ..store import Outbox, PreparedRows, StoreResult, prepare_rows
from ..typing import Clock
from .health import OutboxHealth
from .routing import Router, RoutingProcess, route_safely

__all__ = ["Ack", "Intake", "IntakeObserver", "IntakeSummary"]

Ack = Callable[[StoreResult], Awaitable[None]]

log = structlog.get_logger(__name__)

# The backlog is counted at most this often while the last count plus what was inserted
# since is surely below the high-water mark (a count scans the live rows).
_BACKLOG_RECOUNT_SECONDS = 1.0


class IntakeObserver:
    """Hooks at the exact points of the intake; override what you need.

    Called synchronously from the event loop. The crash tests kill the process from
    these hooks; logs and demos can follow the flow with them.
    """

    def on_batch_received(self, records: Sequence[SourceRecord]) -> None:
        """A batch was handed over; nothing of it is stored yet."""

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        """The outbox transaction committed; the batch is not acknowledged yet."""

    def on_paused(self, backlog: int) -> None:
        """Consumption should pause: the outbox backlog reached the high-water mark."""

    def on_resumed(self, backlog: int) -> None:
        """Consumption may resume: the backlog fell below the low-water mark."""


@dataclass
class IntakeSummary:
    """What the intake stored so far (cumulative)."""

    batches: int = 0
    records: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dropped: int = 0
    pauses: int = 0

    def add(self, records: int, result: StoreResult) -> None:
        self.batches += 1
        self.records += records
        self.inserted += result.inserted
        self.duplicates += result.duplicates
        self.dead_letters += result.dead_letters
        self.dropped += result.dropped

    @classmethod
    def total(cls, summaries: Iterable[IntakeSummary]) -> IntakeSummary:
        """Several intakes' summaries added up (several sources run as one)."""
        total = cls()
        for summary in summaries:
            for name, value in vars(summary).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def fields(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "records": self.records,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "dropped": self.dropped,
        }


@dataclass
class _Routing:
    """A batch handed to the routing child, not stored yet: the child routes the
    records but the stale ones, which are dead letters already (``records`` lists the
    routed ones first, then those)."""

    records: Sequence[SourceRecord]
    ack: Ack
    prepared: asyncio.Future[list[PreparedRows]]
    stale: Sequence[Routed] = ()

    async def rows(self) -> list[PreparedRows]:
        return [*(await self.prepared), *prepare_rows(self.stale)]


@dataclass
class _Committing:
    """A batch written to the outbox whose transaction is committing in a thread."""

    records: Sequence[SourceRecord]
    ack: Ack
    done: asyncio.Future[StoreResult]


async def _no_ack(_result: StoreResult) -> None:
    return None


class Intake:
    """Routes and stores the batches of one source (``source`` labels the metrics).

    Use as ``async with intake:`` (or :meth:`start` / :meth:`close`): that starts the
    committer thread and, with ``routing``, the routing child.
    """

    def __init__(
        self,
        router: Router,
        outbox: Outbox,
        metrics: Metrics,
        *,
        source: str,
        high_water: int,
        low_water: int,
        observer: IntakeObserver | None = None,
        routing: RoutingProcess | None = None,
        clock: Clock = time.time,
        health: OutboxHealth | None = None,
        stale_after_seconds: float | None = None,
    ) -> None:
        self._router = router
        self._health = health or OutboxHealth()
        # A record older than this (by its source timestamp) is a stale_replay dead
        # letter: its key may be pruned from the outbox already, so it could fire twice.
        self._stale_after = stale_after_seconds
        self._outbox = outbox
        self._metrics = metrics
        self._source = source
        self._high_water = high_water
        self._low_water = low_water
        self._observer = observer or IntakeObserver()
        self._routing = routing
        self._clock = clock
        self.summary = IntakeSummary()
        self.paused = False
        # An upper bound of the outbox backlog: the last count plus rows inserted since.
        self._backlog_bound = high_water
        self._backlog_at = 0.0
        # Held while a batch is routed, stored and acknowledged: batches keep their order
        # and a flush never returns with one half done.
        self._lock = asyncio.Lock()
        self._routing_batch: _Routing | None = None  # with a routing child only
        self._committing: _Committing | None = None
        # One thread for the outbox COMMIT: the loop fetches and routes meanwhile.
        self._committer: ThreadPoolExecutor | None = None
        # Push sources: records handed to store() and not yet in a transaction.
        self._waiting: list[tuple[Sequence[SourceRecord], asyncio.Future[StoreResult]]] = []
        self._storing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Intake:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._routing is not None:
            await self._routing.start()
        self._committer = ThreadPoolExecutor(1, f"commit-{self._source}")

    async def close(self) -> None:
        """Stop without storing what is not stored yet: the source delivers it again.

        What push callers already handed over is stored first (they are waiting to answer).
        """
        if self._storing is not None:
            await asyncio.gather(self._storing, return_exceptions=True)
        if self._routing_batch is not None:
            self._routing_batch.prepared.cancel()
            self._routing_batch = None
        # A commit still running finishes on its own thread (durable or rolled back); its
        # batch stays unacknowledged and the next run's duplicates die in the outbox.
        self._committing = None
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.shutdown(wait=True)
        if self._routing is not None:
            self._routing.close()

    # -- pull sources ----------------------------------------------------------------

    async def submit(self, records: Sequence[SourceRecord], ack: Ack) -> None:
        """Take a batch; ``ack(result)`` runs once it is durable (in submission order).

        Returns when the batch is handed over: the previous batch may be stored and
        acknowledged meanwhile, this one by a later :meth:`submit` or :meth:`flush`.
        """
        async with self._lock:
            self._observer.on_batch_received(records)
            now = self._clock()
            if self._routing is None:
                # Inline on the loop: a batch of 500 takes ~40 ms; a worker thread was
                # measured slower (GIL hand-offs) and would not let the loop do more.
                prepared = prepare_rows(self._route(r, now) for r in records)
                await self._stage(records, ack, prepared)
                return
            # Pipelined: take the previous batch's routing, hand this batch to the (now
            # idle) child, store the previous batch while the child routes this one.
            previous, self._routing_batch = self._routing_batch, None
            if previous is not None:
                prepared_previous = await previous.rows()
            self._routing_batch = self._to_child(records, ack, now)
            if previous is not None:
                await self._stage(previous.records, previous.ack, prepared_previous)

    async def flush(self) -> None:
        """Store the batch still being routed and settle every commit: when this returns,
        every batch submitted so far is durable and acknowledged."""
        async with self._lock:
            await self._flush()

    # -- push sources ----------------------------------------------------------------

    async def store(self, records: Sequence[SourceRecord]) -> StoreResult:
        """Route and store ``records``; returns once they are durable (and counted).

        Group commit: what callers hand over while a transaction commits is stored
        together in the next one, so a hundred concurrent webhook senders share an fsync
        instead of queueing for one each. The result is that whole transaction's.
        """
        waiter: asyncio.Future[StoreResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, waiter))
        if self._storing is None or self._storing.done():
            self._storing = asyncio.create_task(self._store_waiting(), name="intake-store")
        # shield: a caller that goes away (a sender hung up) leaves its records to be
        # stored with the others; the transaction is not the caller's to cancel.
        return await asyncio.shield(waiter)

    async def _store_waiting(self) -> None:
        async with self._lock:
            await self._flush()
            while self._waiting:
                group, self._waiting = self._waiting, []
                records = [record for batch, _ in group for record in batch]
                try:
                    self._observer.on_batch_received(records)
                    now = self._clock()
                    prepared = prepare_rows(self._route(r, now) for r in records)
                    await self._stage(records, _no_ack, prepared)
                    committing = self._committing
                    await self._settle()
                    assert committing is not None
                    result = committing.done.result()
                except Exception as exc:  # each caller answers for itself (e.g. a 503)
                    for _, waiter in group:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for _, waiter in group:
                    if not waiter.done():
                        waiter.set_result(result)

    # -- backpressure ----------------------------------------------------------------

    async def backpressure(self) -> bool:
        """Whether the source should be paused now (evaluate after each batch or poll).

        The count runs off the loop; raises ``StoreError`` when the outbox cannot count."""
        if not self.paused:
            now = time.monotonic()
            # A redrive also queues rows, hence a recount at least every second.
            if (
                self._backlog_bound < self._high_water
                and now - self._backlog_at < _BACKLOG_RECOUNT_SECONDS
            ):
                return False
            backlog = await self._count_backlog()
            self._backlog_bound, self._backlog_at = backlog, now
            if backlog >= self._high_water:
                self._set_paused(True)
                self.summary.pauses += 1
                log.info("intake_paused", backlog=backlog, high_water=self._high_water)
                self._observer.on_paused(backlog)
        else:
            backlog = await self._count_backlog()
            if backlog < self._low_water:
                self._set_paused(False)
                log.info("intake_resumed", backlog=backlog, low_water=self._low_water)
                self._observer.on_resumed(backlog)
        return self.paused

    async def _count_backlog(self) -> int:
        # On the committer thread: after the batch being written, so it is counted.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._committer, self._outbox.backlog)

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self._metrics.consumer_paused.set(1 if paused else 0)

    # -- the pipeline (lock held) ----------------------------------------------------

    async def _flush(self) -> None:
        batch, self._routing_batch = self._routing_batch, None
        if batch is not None:
            await self._stage(batch.records, batch.ack, await batch.rows())
        await self._settle()

    # -- routing -----------------------------------------------------------------------

    def _stale(self, record: SourceRecord, now: float) -> Routed | None:
        """A ``stale_replay`` dead letter for a record older than the outbox keeps keys."""
        if self._stale_after is None or record.timestamp_ms is None:
            return None
        age = now - record.timestamp_ms / 1000
        if age <= self._stale_after:
            return None
        message = (
            f"the record is {age / 86400:.1f} days old, older than the outbox keeps "
            f"Idempotency-Keys ({self._stale_after / 86400:.1f} days, "
            "outbox.retention_seconds): it may have fired already, so it is not fired again"
        )
        dead = NewDeadLetter(
            stage="ingest",
            reason=Reason.STALE_REPLAY,
            message=message,
            details={"age_seconds": round(age, 3), "retention_seconds": self._stale_after},
        )
        return Routed(record, dead_letters=(dead,))

    def _route(self, record: SourceRecord, now: float) -> Routed:
        return self._stale(record, now) or route_safely(self._router, record)

    def _to_child(self, records: Sequence[SourceRecord], ack: Ack, now: float) -> _Routing:
        assert self._routing is not None
        stale = [s for s in (self._stale(r, now) for r in records) if s is not None]
        if not stale:
            return _Routing(records, ack, self._routing.submit(records))
        kept = {id(s.record) for s in stale}
        fresh = [r for r in records if id(r) not in kept]
        ordered = [*fresh, *(s.record for s in stale)]
        return _Routing(ordered, ack, self._routing.submit(fresh), stale)

    async def _stage(
        self, records: Sequence[SourceRecord], ack: Ack, prepared: Sequence[PreparedRows]
    ) -> None:
        # ONE outbox transaction per batch, committed in the committer thread while the
        # loop goes on; the previous batch's commit is settled first (one in flight).
        await self._settle()
        if self._committer is None:
            raise RuntimeError("the intake is not started")
        now = self._clock()
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()

        def settle_written(error: BaseException | None) -> None:
            if not written.done():
                if error is None:
                    written.set_result(None)
                else:
                    written.set_exception(error)

        def write() -> StoreResult:
            # The INSERTs and their COMMIT both off the loop: an outbox that waits on a
            # lock (or a slow disk) stalls neither /healthz nor the fires in flight.
            try:
                staged = self._outbox.stage_rows(records, prepared, now)
            except BaseException as exc:
                loop.call_soon_threadsafe(settle_written, exc)
                raise
            loop.call_soon_threadsafe(settle_written, None)
            return staged.commit()

        done = loop.run_in_executor(self._committer, write)
        self._committing = _Committing(records, ack, done)
        # The source waits for the INSERTs (the loop does not): routing the next batch
        # meanwhile was measured 25 % slower (both need the GIL); overlapping it with the
        # COMMIT's fsync, which frees the GIL, is what pays. A failure shows in _settle.
        with contextlib.suppress(Exception):
            await written

    async def _settle(self) -> None:
        """Wait for the batch being committed, count it, then acknowledge it."""
        batch, self._committing = self._committing, None
        if batch is None:
            return
        try:
            result = await batch.done
        except StoreError as exc:  # nothing acknowledged: the source gets it again
            self._health.failed("store a batch", exc)
            raise
        self._health.succeeded()
        self._count(len(batch.records), result)
        self.summary.add(len(batch.records), result)
        self._backlog_bound += result.inserted
        self._observer.on_batch_stored(batch.records, result)
        log.debug(
            "batch_stored",
            records=len(batch.records),
            inserted=result.inserted,
            duplicates=result.duplicates,
            dead_letters=result.dead_letters,
        )
        await batch.ack(result)

    def _count(self, consumed: int, result: StoreResult) -> None:
        m, source = self._metrics, self._source
        m.events_consumed.labels(source).inc(consumed)
        for route, n in result.inserted_by_route.items():
            if n:
                m.events_routed.labels(source, route).inc(n)
        for route, n in result.duplicates_by_route.items():
            if n:
                m.events_duplicate.labels(source, route).inc(n)
        if result.dropped:
            m.events_dropped.labels(source, Reason.NO_ROUTE.value).inc(result.dropped)
        for (route, reason), n in result.dead_letters_by_reason.items():
            if n:
                m.dead_letters.labels("ingest", route, reason).inc(n)
