"""The Kafka source: one consumer group, batches into the outbox, then the offset commit.

Why aiokafka directly and not a FastStream subscriber: the durability promise
(invariant 1) is "commit a partition's offset only up to the highest offset below
which every record is durably in the outbox", computed per batch by
:mod:`brew_bridge.sources.kafka.offsets` and also flushed when partitions are revoked. FastStream's
Kafka ack model is per message (``ack`` commits that message's offset, ``nack`` seeks
back to it), and its commit semantics have not been dependable across versions:

* ag2ai/faststream#1001 (FastStream 0.2.15, aiokafka): with ``auto_commit=False`` a
  message was still committed after ``msg.nack()``; fixed only in 0.5.18 (PR #1678).
* ag2ai/faststream#2618 (0.6): ack policies did not behave as documented; with
  ``auto_commit=False`` a failed message is left "unset", and the next successful
  message commits an offset past it, so the failed one is never read again
  (fixed by PR #2644).

Neither model can say "commit the position below which a whole batch is stored", nor
commit in ``on_partitions_revoked``. Here the consumer is an ``AIOKafkaConsumer`` with
``enable_auto_commit=False`` and every commit is explicit.

The loop: ``getmany`` (at most ``max_batch_records``) -> :class:`~brew_bridge.core.intake.Ingest`
routes and stores the batch in one outbox transaction -> the tracker marks it durable
-> the positions are committed. The handler never calls Brew, so a batch takes
milliseconds and the member is never evicted for being slow. Backpressure
(invariant 6): at ``outbox.high_water`` rows still to fire, every assigned partition
is paused (the loop keeps polling, so the member stays alive) until the backlog is
below ``low_water``; at most one batch is in RAM (two when pipelined, below) and the
fetch buffer is bounded.

With ``kafka.routing_workers: 1`` the loop is a two-stage pipeline over two cores:
batch N+1 is routed in a child process (:class:`RoutingProcess`; routing is pure, the
child compiles the routes once from the config) while this process stores batch N and
commits its offsets. Batches are still stored one at a time and in order, and offsets
are still committed only after the batch holding them is stored. On revocation the
batch still being routed is awaited and stored before the revocation commit, as the
inline loop finishes the batch in hand: simpler than storing part of a batch, and the
new owner starts exactly after it. A batch is stored when the next one is fetched, or
on the first empty poll (so at most ``poll_timeout_ms`` later on a quiet topic). A child
that dies raises :class:`SourceError`; the batch it held is neither stored nor
committed, so the next run re-reads it.

A crash at any point loses nothing: before the outbox commit nothing is stored and
nothing committed; between the two, the batch is re-read and the outbox refuses the
duplicates (records, deliveries and ingest dead letters are unique).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from brew_bridge.config import BridgeConfig, KafkaConfig, OutboxConfig
from brew_bridge.core.intake import Ingest, route_safely
from brew_bridge.errors import SourceError
from brew_bridge.events import Routed, SourceRecord
from brew_bridge.mapping.routing import CompiledRoutes, compile_routes, route_record
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.offsets import OffsetTracker, Partition
from brew_bridge.store.outbox import Outbox, PreparedRows, StoreResult, prepare_rows

__all__ = [
    "IngestObserver",
    "IngestSummary",
    "KafkaSource",
    "RoutingProcess",
    "build_kafka_source",
    "probe_end_offsets",
]

log = structlog.get_logger(__name__)

# The fetch buffer is what aiokafka holds beyond the batch being handled; bounded so
# memory stays flat however large the backlog in Kafka (4 MiB measured as fast as 16).
_FETCH_MAX_BYTES = 4 * 1024 * 1024


class IngestObserver:
    """Hooks at the exact points of the ingest loop; override what you need.

    Called synchronously from the loop. The crash tests kill the process from these
    hooks; logs and demos can follow the flow with them.
    """

    def on_batch_received(self, records: Sequence[SourceRecord]) -> None:
        """A batch was fetched; nothing of it is stored yet."""

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        """The outbox transaction committed; the offsets are not committed yet."""

    def on_offsets_committed(self, positions: Mapping[Partition, int]) -> None:
        """The broker accepted these positions (next offset to read, per partition)."""

    def on_paused(self, backlog: int) -> None:
        """Consumption paused: the outbox backlog reached the high-water mark."""

    def on_resumed(self, backlog: int) -> None:
        """Consumption resumed: the backlog fell below the low-water mark."""

    def on_assigned(self, partitions: frozenset[Partition]) -> None:
        """The group gave this member these partitions."""

    def on_revoked(self, partitions: frozenset[Partition]) -> None:
        """These partitions were flushed, committed and handed back to the group."""


@dataclass
class IngestSummary:
    """What a run of the source did (cumulative)."""

    batches: int = 0
    records: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dropped: int = 0
    pauses: int = 0
    committed: dict[Partition, int] = field(default_factory=dict)

    def add(self, records: int, result: StoreResult) -> None:
        self.batches += 1
        self.records += records
        self.inserted += result.inserted
        self.duplicates += result.duplicates
        self.dead_letters += result.dead_letters
        self.dropped += result.dropped


def _partition(tp: TopicPartition) -> Partition:
    return (tp.topic, tp.partition)


def _source_record(msg: Any) -> SourceRecord:
    # aiokafka ConsumerRecord; a tombstone (value None) is an empty value (-> invalid_json).
    # Plain attribute access, no copies: this runs once per record.
    value = msg.value
    headers = msg.headers
    return SourceRecord(
        "kafka",
        msg.topic,
        msg.partition,
        msg.offset,
        msg.key,
        b"" if value is None else value,
        tuple((name, b"" if v is None else v) for name, v in headers) if headers else (),
        msg.timestamp,
    )


# What crosses the process boundary: plain tuples pickle several times faster than the
# dataclasses; the record goes to the child, its outbox rows come back.
_Row = tuple[str, int, int, bytes | None, bytes, tuple[tuple[str, bytes], ...], int | None]


def _routing_child(conn: Connection, config: BridgeConfig) -> None:
    """The routing child's loop: rows in, outcomes out, in order, until EOF."""
    try:
        router = partial(route_record, routes=compile_routes(config))
    except Exception as exc:  # a config the parent compiled: only a bug gets here
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        return
    while True:
        try:
            # Our own parent on a private pipe: trusted bytes.
            rows: list[_Row] = pickle.loads(conn.recv_bytes())  # noqa: S301
        except EOFError:  # the parent closed the pipe, or died
            return
        prepared = prepare_rows(route_safely(router, SourceRecord("kafka", *row)) for row in rows)
        conn.send_bytes(pickle.dumps(("ok", prepared), pickle.HIGHEST_PROTOCOL))


class RoutingProcess:
    """Routes batches in one child process, so routing overlaps the outbox writes.

    ``start()`` spawns the child, which compiles the routes once; ``submit`` sends it a
    batch and returns a future of its outcomes (batches are routed in order);
    ``close()`` ends the child. One pipe, read by the event loop: no helper threads in
    this process, whose GIL the outbox writes need (a ProcessPoolExecutor's two
    threads were measured to cost ~25 µs of this process's CPU per event). Spawned,
    not forked: forking a process that runs threads is unsafe. A child that dies fails
    every batch it held with :class:`SourceError`.
    """

    def __init__(self, config: BridgeConfig) -> None:
        self._config = config
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._waiting: deque[asyncio.Future[list[PreparedRows]]] = deque()
        self._error: str | None = None

    async def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        process = ctx.Process(
            target=_routing_child,
            args=(child_conn, self._config),
            name="brew-bridge-routing",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._conn, self._process, self._error = conn, process, None
        asyncio.get_running_loop().add_reader(conn.fileno(), self._on_readable)
        await self.submit([])  # the routes are compiled once this answers

    def submit(self, records: Sequence[SourceRecord]) -> asyncio.Future[list[PreparedRows]]:
        """Send a batch to the child (best when it is idle: the send blocks on a full pipe)."""
        if self._conn is None or self._error is not None:
            raise self._died()
        rows = [
            (r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp_ms)
            for r in records
        ]
        try:
            self._conn.send_bytes(pickle.dumps(rows, pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            self._fail(str(exc))
            raise self._died() from exc
        future: asyncio.Future[list[PreparedRows]] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return future

    def close(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()  # the child reads EOF and exits
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self._fail("the routing process was stopped")

    def _on_readable(self) -> None:
        assert self._conn is not None
        try:
            # Our own child on a private pipe: trusted bytes.
            status, body = pickle.loads(self._conn.recv_bytes())  # noqa: S301
        except (EOFError, OSError) as exc:
            code = None if self._process is None else self._process.exitcode
            self._fail(f"it exited (code {code}, {type(exc).__name__})")
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            return
        if status == "error":
            self._fail(body)
            return
        future = self._waiting.popleft()
        if not future.done():
            future.set_result(body)

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(self._died())

    def _died(self) -> SourceError:
        return SourceError(
            f"the routing process failed ({self._error or 'not started'}); its batches are "
            "neither stored nor committed and are read again on restart; "
            "kafka.routing_workers: 0 routes inline"
        )


@dataclass
class _Batch:
    """A batch received and being routed in the child, not stored yet."""

    records: list[SourceRecord]
    by_partition: dict[Partition, list[int]]
    prepared: asyncio.Future[list[PreparedRows]]


@dataclass
class _Committing:
    """A batch written to the outbox whose transaction is committing in a thread."""

    records: list[SourceRecord]
    by_partition: dict[Partition, list[int]]
    done: asyncio.Future[StoreResult]  # the StoreResult once durable


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._source._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._source._on_assigned(assigned)


class KafkaSource:
    """One member of the consumer group ``kafka.group_id``, feeding the outbox.

    ``run(stop)`` consumes until ``stop`` is set; ``drain()`` (``brew-bridge run
    --once``) consumes until every assigned partition reached its end offset, then
    returns. Both commit what is durable and leave the group.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        outbox_config: OutboxConfig,
        topics: Collection[str],
        ingest: Ingest,
        outbox: Outbox,
        metrics: Metrics,
        *,
        observer: IngestObserver | None = None,
        routing: RoutingProcess | None = None,
    ) -> None:
        if not topics:
            raise SourceError("no Kafka topics to consume: add a route with a topic")
        self._kafka = kafka
        self._high_water = outbox_config.high_water
        self._low_water = outbox_config.low_water
        self._topics = sorted(topics)
        self._ingest = ingest
        self._outbox = outbox
        self._metrics = metrics
        self._observer = observer or IngestObserver()
        self._tracker = OffsetTracker()
        self._paused = False
        self._revoked: set[TopicPartition] = set()
        # An upper bound of the outbox backlog: the last count plus rows inserted since.
        self._backlog_bound = outbox_config.high_water
        self._backlog_at = 0.0
        # Held while a batch is stored and committed, and while a revocation flushes:
        # a revoked partition is never handed back with a batch half done.
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._routing = routing
        self._pending: _Batch | None = None  # pipelined only: the batch being routed
        self._committing: _Committing | None = None  # the batch being made durable
        # One thread for the outbox COMMIT (mostly an fsync, which frees the GIL): the
        # loop fetches and routes the next batch meanwhile.
        self._committer: ThreadPoolExecutor | None = None
        self.summary = IngestSummary()

    @property
    def paused(self) -> bool:
        return self._paused

    # -- public entry points -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (checked at least every ``poll_timeout_ms``)."""
        await self._consume(stop, until_caught_up=False, assignment_timeout=None)

    async def drain(self, *, assignment_timeout: float = 30.0) -> IngestSummary:
        """Consume until every assigned partition is caught up with its end; then return.

        The end of a partition is read once, when it first looks caught up, so records
        produced after that are left for the next run. While paused by backpressure a
        drain waits for the backlog to fall (something must be firing).

        Waits up to ``assignment_timeout`` seconds for the group to assign partitions;
        a member given none (more members than partitions) returns when it expires.
        """
        await self._consume(
            asyncio.Event(), until_caught_up=True, assignment_timeout=assignment_timeout
        )
        return self.summary

    # -- the loop ------------------------------------------------------------------------

    async def _start(self) -> AIOKafkaConsumer:
        k = self._kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap_servers,
            group_id=k.group_id,
            client_id=k.client_id,
            enable_auto_commit=False,
            # Records of aborted producer transactions are events that did not happen:
            # they must never send an email.
            isolation_level="read_committed",
            auto_offset_reset=k.auto_offset_reset,
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            max_poll_interval_ms=k.max_poll_interval_ms,
            fetch_max_bytes=_FETCH_MAX_BYTES,
            # At least one whole record of the largest size we accept (larger ones are
            # still fetched: brokers return a first batch whatever its size).
            max_partition_fetch_bytes=max(1024 * 1024, k.max_record_bytes + 64 * 1024),
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise SourceError(
                f"cannot reach Kafka at kafka.bootstrap_servers={k.bootstrap_servers!r}: "
                f"{exc}; check the address and that the broker is up"
            ) from exc
        consumer.subscribe(topics=self._topics, listener=_Listener(self))
        log.info("kafka_subscribed", topics=self._topics, group_id=k.group_id)
        return consumer

    async def _consume(
        self, stop: asyncio.Event, *, until_caught_up: bool, assignment_timeout: float | None
    ) -> None:
        if self._routing is not None:
            try:
                await self._routing.start()
            except BaseException:
                self._routing.close()
                raise
        try:
            consumer = await self._start()
        except BaseException:
            if self._routing is not None:
                self._routing.close()
            raise
        self._consumer = consumer
        committer = self._committer = ThreadPoolExecutor(1, "brew-bridge-commit")
        targets: dict[TopicPartition, int] = {}
        deadline = None if assignment_timeout is None else time.monotonic() + assignment_timeout
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(
                    timeout_ms=self._kafka.poll_timeout_ms,
                    max_records=self._kafka.max_batch_records,
                )
                async with self._lock:
                    # Records of a partition revoked (and flushed) while this fetch was in
                    # flight are left to its next owner, who reads on from the commit.
                    records = [
                        _source_record(msg)
                        for tp, msgs in fetched.items()
                        if tp not in self._revoked
                        for msg in msgs
                    ]
                    if records:
                        await self._handle(consumer, records)
                    else:
                        # Quiet topic or paused: a batch routed in the child is stored now,
                        # not when the next batch comes.
                        await self._flush(consumer)
                    self._backpressure(consumer)
                if until_caught_up and await self._caught_up(consumer, targets, deadline):
                    break
            async with self._lock:
                await self._flush(consumer)
                await self._commit(consumer)
        finally:
            self._consumer = None
            if self._pending is not None:
                # Not stored, so not committed either: the next run re-reads it.
                self._pending.prepared.cancel()
                self._pending = None
            # A commit still running finishes on its own thread (durable or rolled back);
            # its offsets stay uncommitted and the next run's duplicates die in the outbox.
            self._committing = self._committer = None
            committer.shutdown(wait=True)
            if self._routing is not None:
                self._routing.close()
            self._set_paused(consumer, False)
            await consumer.stop()
            log.info("kafka_stopped", **_summary_fields(self.summary))

    async def _handle(self, consumer: AIOKafkaConsumer, records: list[SourceRecord]) -> None:
        by_partition = self._receive(consumer, records)
        if self._routing is None:
            # Inline on the loop: a batch of 500 takes ~40 ms; a worker thread was
            # measured slower (GIL hand-offs) and would not let the loop do more meanwhile.
            prepared = self._ingest.prepare_batch(records)
            await self._store(consumer, records, by_partition, prepared)
            return
        # Pipelined: take the previous batch's routing, hand this batch to the (now
        # idle) child, store the previous batch while the child routes this one.
        previous, self._pending = self._pending, None
        if previous is None:
            self._pending = _Batch(records, by_partition, self._routing.submit(records))
            return
        prepared_previous = await previous.prepared
        self._pending = _Batch(records, by_partition, self._routing.submit(records))
        await self._store(consumer, previous.records, previous.by_partition, prepared_previous)

    async def _flush(self, consumer: AIOKafkaConsumer) -> None:
        """Store the batch still being routed, if any, and settle every commit in flight
        (call with the lock held)."""
        batch, self._pending = self._pending, None
        if batch is not None:
            prepared = await batch.prepared
            await self._store(consumer, batch.records, batch.by_partition, prepared)
        await self._settle(consumer)

    def _receive(
        self, consumer: AIOKafkaConsumer, records: list[SourceRecord]
    ) -> dict[Partition, list[int]]:
        self._observer.on_batch_received(records)
        # Track only what this member owns now; a partition revoked mid-fetch is
        # committed by its new owner.
        owned = {_partition(tp) for tp in consumer.assignment()}
        by_partition: dict[Partition, list[int]] = {}
        for r in records:
            if (r.topic, r.partition) in owned:
                by_partition.setdefault((r.topic, r.partition), []).append(r.offset)
        for p, offsets in by_partition.items():
            self._tracker.received(p, offsets)
        return by_partition

    async def _store(
        self,
        consumer: AIOKafkaConsumer,
        records: list[SourceRecord],
        by_partition: dict[Partition, list[int]],
        prepared: list[PreparedRows],
    ) -> None:
        # ONE outbox transaction per batch, committed in the committer thread while the
        # loop goes on; the previous batch's commit is settled first (one in flight).
        await self._settle(consumer)
        staged = self._ingest.stage(records, prepared)
        # No await between these lines: the outbox stays locked until the commit, which
        # only the committer thread can now end.
        assert self._committer is not None
        done = asyncio.get_running_loop().run_in_executor(self._committer, staged.commit)
        self._committing = _Committing(records, by_partition, done)

    async def _settle(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the batch being committed, then count it and commit its offsets."""
        batch, self._committing = self._committing, None
        if batch is None:
            return
        result = await batch.done  # an StoreError stops the source: nothing committed
        self._ingest.count(len(batch.records), result)
        for p, offsets in batch.by_partition.items():
            self._tracker.durable(p, offsets)
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
        await self._commit(consumer)

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: Collection[Partition] | None = None
    ) -> None:
        owned = {_partition(tp) for tp in consumer.assignment()}
        positions = {
            p: pos
            for p, pos in self._tracker.to_commit().items()
            if p in owned and (only is None or p in only)
        }
        if not positions:
            return
        try:
            await consumer.commit({TopicPartition(t, p): pos for (t, p), pos in positions.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: another member re-reads from the last commit and the
            # outbox refuses the duplicates. Nothing is lost.
            log.warning("offset_commit_refused", error=str(exc), positions=_fmt(positions))
            return
        except KafkaError as exc:
            # Retried after the next batch (the tracker still holds the positions).
            log.warning("offset_commit_failed", error=str(exc), positions=_fmt(positions))
            return
        self._tracker.committed(positions)
        self.summary.committed.update(positions)
        self._observer.on_offsets_committed(positions)

    def _backpressure(self, consumer: AIOKafkaConsumer) -> None:
        if not self._paused:
            # Counting the backlog costs a scan of the live rows; skip it while the last
            # count plus what was inserted since is surely below the mark. Re-counted at
            # least every second (a redrive also queues rows).
            now = time.monotonic()
            if self._backlog_bound < self._high_water and now - self._backlog_at < 1.0:
                return
            backlog = self._outbox.backlog()
            self._backlog_bound, self._backlog_at = backlog, now
            if backlog >= self._high_water:
                self._set_paused(consumer, True)
                self.summary.pauses += 1
                log.info("consumer_paused", backlog=backlog, high_water=self._high_water)
                self._observer.on_paused(backlog)
        else:
            backlog = self._outbox.backlog()
            if backlog < self._low_water:
                self._set_paused(consumer, False)
                log.info("consumer_resumed", backlog=backlog, low_water=self._low_water)
                self._observer.on_resumed(backlog)

    def _set_paused(self, consumer: AIOKafkaConsumer, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        self._metrics.consumer_paused.set(1 if paused else 0)
        tps = list(consumer.assignment())
        if tps:
            if paused:
                consumer.pause(*tps)
            else:
                consumer.resume(*tps)

    async def _caught_up(
        self,
        consumer: AIOKafkaConsumer,
        targets: dict[TopicPartition, int],
        deadline: float | None,
    ) -> bool:
        assigned = set(consumer.assignment())
        if not assigned:
            if deadline is not None and time.monotonic() > deadline:
                log.warning("no_partitions_assigned", topics=self._topics)
                return True
            return False
        positions = {tp: await consumer.position(tp) for tp in assigned}
        # Cheap test first: behind the high watermark of the last fetch means not done
        # (that watermark may be low on Tansu, never high). Probe the exact end only
        # for partitions that look done, once each.
        for tp, pos in positions.items():
            highwater = consumer.highwater(tp)
            if highwater is None or pos < highwater:
                return False
        new = [tp for tp in assigned if tp not in targets]
        if new:
            targets.update(await probe_end_offsets(self._kafka.bootstrap_servers, new))
        return all(pos >= targets[tp] for tp, pos in positions.items())

    # -- rebalance -----------------------------------------------------------------------

    async def _on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        # Wait for the batch in flight (and, pipelined, the one being routed) to be
        # stored, then commit what is durable.
        async with self._lock:
            parts = frozenset(_partition(tp) for tp in revoked)
            if self._consumer is not None:
                await self._flush(self._consumer)
                await self._commit(self._consumer, only=parts)
            self._tracker.forget(parts)
            self._revoked.update(revoked)
        log.info("partitions_revoked", partitions=_fmt_parts(parts))
        self._observer.on_revoked(parts)

    def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        parts = frozenset(_partition(tp) for tp in assigned)
        # Start clean: positions come from the group's committed offsets.
        self._tracker.forget(parts)
        self._revoked.difference_update(assigned)
        if self._paused and self._consumer is not None and assigned:
            self._consumer.pause(*assigned)  # new partitions wait too
        log.info("partitions_assigned", partitions=_fmt_parts(parts))
        self._observer.on_assigned(parts)


def build_kafka_source(
    config: BridgeConfig,
    routes: CompiledRoutes,
    outbox: Outbox,
    metrics: Metrics,
    *,
    observer: IngestObserver | None = None,
) -> KafkaSource:
    """The Kafka source for a loaded config: its routes' topics, routed by ``route_record``."""

    def router(record: SourceRecord) -> Routed:
        return route_record(record, routes)

    return KafkaSource(
        config.kafka,
        config.outbox,
        routes.topics,
        Ingest(router, outbox, metrics, source="kafka"),
        outbox,
        metrics,
        observer=observer,
        routing=RoutingProcess(config) if config.kafka.routing_workers else None,
    )


async def probe_end_offsets(
    bootstrap_servers: str, partitions: Collection[TopicPartition], *, wait_seconds: float = 10.0
) -> dict[TopicPartition, int]:
    """The next offset to be written, per partition, exactly.

    ``ListOffsets`` is asked first; then the last record below that end is read back
    with a separate group-less consumer, and the end is one past the last offset seen.
    On Kafka the two agree. Tansu (the test broker) reports the end as one past the
    *first* offset of the last record batch, which would stop ``drain()`` early.
    """
    tps = list(partitions)
    if not tps:
        return {}
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        isolation_level="read_committed",  # the end the group consumer can reach
    )
    await probe.start()
    try:
        ends: dict[TopicPartition, int] = dict(await probe.end_offsets(tps))
        todo = {tp: end for tp, end in ends.items() if end > 0}
        if not todo:
            return ends
        probe.assign(list(todo))
        for tp, end in todo.items():
            probe.seek(tp, end - 1)
        deadline = time.monotonic() + wait_seconds
        while todo and time.monotonic() < deadline:
            fetched = await probe.getmany(*todo, timeout_ms=200)
            for tp, msgs in fetched.items():
                if msgs:
                    ends[tp] = max(ends[tp], msgs[-1].offset + 1)
            for tp in list(todo):
                if await probe.position(tp) >= ends[tp]:
                    del todo[tp]
        return ends
    finally:
        await probe.stop()


def _fmt(positions: Mapping[Partition, int]) -> dict[str, int]:
    return {f"{t}:{p}": pos for (t, p), pos in positions.items()}


def _fmt_parts(parts: Collection[Partition]) -> list[str]:
    return sorted(f"{t}:{p}" for t, p in parts)


def _summary_fields(s: IngestSummary) -> dict[str, int]:
    return {
        "batches": s.batches,
        "records": s.records,
        "inserted": s.inserted,
        "duplicates": s.duplicates,
        "dead_letters": s.dead_letters,
        "dropped": s.dropped,
    }
