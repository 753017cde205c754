"""The Kafka source: one consumer group member feeding the intake, committing offsets
only up to what is durable.

Why aiokafka directly and not a FastStream subscriber, measured: the durability promise
(invariant 1) is "commit a partition's offset only up to the highest offset below
which every record is durably in the outbox", computed per batch by
:mod:`~brew_bridge.sources.kafka.offsets` and also flushed when partitions are revoked.
FastStream 0.7.8 can carry that rule: a ``KafkaBroker`` batch subscriber with
``AckPolicy.MANUAL`` never commits, and the intake's ack commits the tracker's positions
through its raw consumer (``subscriber.consumer``). That candidate,
bench/ingest_kinds/kafka_faststream.py, feeding the same intake with the same fetch
limits, against this source (2026-12-03, afternoon, 2 cores shared;
``python bench/ingest.py --faststream --events 20000 --repeat 3`` and ``--events
100000``; medians of interleaved rounds):

* events/s, faststream / direct: 1.02 and 0.99 with routing inline, 0.95 and 0.88 with
  the routing child;
* CPU per event: about the same inline (56-57 us), 5-12 % more with the routing child;
* peak RSS: 105 MB against 77 MB at 20k events, 118-121 MB against 78 MB at 100k: over
  the 100 MB the worker is held to, and growing with the backlog where this consumer
  stays flat (earlier, with a 4 MiB fetch buffer for both, 164-173 against 111-120 MB).

Throughput is the same, and the Kafka crash tests pass against it at all three kill
points (tests/kafka/test_kafka_crash.py, its worker building that source: the command is
in kafka_faststream.py). Kept direct all the same, for the memory: 28-43 MB more, and
rising with the backlog. Revisit when a FastStream release holds memory flat: the
candidate is kept in bench/ for that.

Here the consumer is an ``AIOKafkaConsumer`` with ``enable_auto_commit=False`` and every
commit is explicit.

The loop: ``getmany`` (at most ``max_batch_records``) -> :meth:`Intake.submit` routes
and stores the batch in one outbox transaction -> its ack marks the offsets durable in
the tracker and commits the positions. The handler never calls a target, so a batch
takes milliseconds and the member is never evicted for being slow. Backpressure
(invariant 6): when the intake says so, every assigned partition is paused (the loop
keeps polling, so the member stays alive) until it says resume. On revocation the
intake is flushed (every batch submitted is stored) before the revocation commit, so
the new owner starts exactly after it. A batch still being routed when the loop is idle
is stored on the first empty poll (at most ``poll_timeout_ms`` later).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from brew_bridge.config import BridgeConfig, KafkaConfig
from brew_bridge.core.health import OutboxHealth
from brew_bridge.core.intake import Intake, IntakeObserver, IntakeSummary
from brew_bridge.errors import SourceError, StoreError
from brew_bridge.events import SourceRecord
from brew_bridge.mapping.routing import CompiledRoutes
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.intake import source_intake
from brew_bridge.sources.kafka.offsets import Behind, CatchUp, OffsetTracker, Partition
from brew_bridge.sources.kafka.probes import GroupMember, probe_end_offsets, probe_group_members
from brew_bridge.store import Outbox, StoreResult

__all__ = [
    "KafkaObserver",
    "KafkaSource",
    "Rebalance",
    "build_kafka_source",
    "fetch_limits",
    "positions_to_commit",
]

log = structlog.get_logger(__name__)

SOURCE = "kafka"
# While the outbox cannot store a batch: the first wait before consuming again, doubled
# up to the last.
_FIRST_STORE_RETRY = 1.0
_MAX_STORE_RETRY = 30.0
# The fetch buffer is what aiokafka holds beyond the batch being handled; bounded so
# memory stays flat however large the backlog in Kafka. Kafka caps a whole fetch
# response at this; Tansu caps each partition's share of it at this instead (it ignores
# max_partition_fetch_bytes), so there the buffer is this times the partitions. Over
# 9 partitions with 300k 1 KB records waiting (bench/backlog.py), 1 MiB against 4:
# peak RSS 88 MB against 131-139, and 5.3-6.2k events/s against 3.5-4.1k.
_FETCH_MAX_BYTES = 1024 * 1024
# --once: how long to wait for the group's committed offsets (aiokafka retries forever).
_COMMITTED_TIMEOUT = 10.0


def fetch_limits(kafka: KafkaConfig) -> dict[str, int]:
    """The consumer's fetch sizes: what bounds the bytes it buffers ahead of the loop."""
    return {
        "fetch_max_bytes": _FETCH_MAX_BYTES,
        # At least one whole record of the largest size we accept (larger ones are
        # still fetched: brokers return a first batch whatever its size).
        "max_partition_fetch_bytes": max(1024 * 1024, kafka.max_record_bytes + 64 * 1024),
    }


class KafkaObserver(IntakeObserver):
    """The intake's hooks plus the consumer group's; override what you need."""

    def on_offsets_committed(self, positions: Mapping[Partition, int]) -> None:
        """The broker accepted these positions (next offset to read, per partition)."""

    def on_assigned(self, partitions: frozenset[Partition]) -> None:
        """The group gave this member these partitions."""

    def on_revoked(self, partitions: frozenset[Partition]) -> None:
        """These partitions were flushed, committed and handed back to the group."""


def _source_record(msg: Any) -> SourceRecord:
    # aiokafka ConsumerRecord; a tombstone (value None) is an empty value (-> invalid_json).
    # Plain attribute access, no copies: this runs once per record.
    value = msg.value
    headers = msg.headers
    return SourceRecord(
        SOURCE,
        msg.topic,
        f"{msg.partition}:{msg.offset}",  # events.numbered_position reads it back
        msg.key,
        b"" if value is None else value,
        tuple((name, b"" if v is None else v) for name, v in headers) if headers else (),
        msg.timestamp,
    )


def positions_to_commit(
    tracker: OffsetTracker, consumer: AIOKafkaConsumer, only: Collection[Partition] | None
) -> dict[Partition, int]:
    """The durable positions that moved, on partitions ``consumer`` still owns (of
    ``only``, when given): a revoked partition's are the next owner's to commit."""
    owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    return {
        p: pos
        for p, pos in tracker.to_commit().items()
        if p in owned and (only is None or p in only)
    }


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance listener, handing each side to a callable."""

    def __init__(
        self,
        revoked: Callable[[Collection[TopicPartition]], Awaitable[None]],
        assigned: Callable[[Collection[TopicPartition]], None],
    ) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._assigned(assigned)


class KafkaSource:
    """One member of the consumer group ``kafka.group_id``, feeding the intake.

    ``run(stop)`` consumes until ``stop`` is set; ``drain()`` (``brew-bridge run
    --once``) consumes until the group's commits reach the end of every partition of its
    topics, then returns. Both commit what is durable and leave the group.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topics: Collection[str],
        intake: Intake,
        *,
        observer: KafkaObserver | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if not topics:
            raise SourceError("no Kafka topics to consume: add a route with a topic")
        self._kafka = kafka
        self._topics = sorted(topics)
        self._intake = intake
        self._observer = observer or KafkaObserver()
        self._lag = metrics.consumer_lag if metrics is not None else None
        self._tracker = OffsetTracker()
        self._revoked: set[TopicPartition] = set()
        # Held while a fetched batch is handed over, and while a revocation flushes: a
        # revoked partition is never handed back with a batch half done.
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._paused = False
        self._lag_partitions: set[Partition] = set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def summary(self) -> IntakeSummary:
        return self._intake.summary

    # -- public entry points -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (checked at least every ``poll_timeout_ms``).

        When the outbox cannot store a batch (a full disk, a lock held too long) nothing
        of it is committed: the consumer leaves, waits (1 s doubling to 30 s) and joins
        again, reading on from the committed offsets, until the outbox takes it.
        """
        delay = _FIRST_STORE_RETRY
        while True:
            try:
                await self._consume(stop, until_caught_up=False, assignment_timeout=None)
                return
            except StoreError as exc:
                log.error("kafka_paused_outbox_failing", error=str(exc), retry_in_seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            delay = min(_MAX_STORE_RETRY, delay * 2)

    async def drain(self, *, assignment_timeout: float = 30.0) -> IntakeSummary:
        """Consume until the group's committed offsets reach the end of every partition
        of the topics (not only this member's); then return.

        The end of a partition is read once, when it is first looked at, so records
        produced after that are left for the next run. While paused by backpressure a
        drain waits for the backlog to fall (something must be firing).

        Partitions another member holds are done when that member commits them to their
        end. A member killed without leaving keeps its partitions until its session
        times out and the group gives them to a live member (this one, say), so once
        this member has read its own, it keeps consuming and waiting: for at most
        ``kafka.session_timeout_ms`` plus ``assignment_timeout`` seconds without
        progress (an assignment changing, a commit moving). Then it raises a
        :class:`SourceError` naming the partitions not at their end and the members
        that hold them. When the topics have no partitions at all it returns after
        ``assignment_timeout`` seconds.
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
            **fetch_limits(k),
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise SourceError(
                f"cannot reach Kafka at kafka.bootstrap_servers={k.bootstrap_servers!r}: "
                f"{exc}; check the address and that the broker is up"
            ) from exc
        consumer.subscribe(
            topics=self._topics, listener=Rebalance(self._on_revoked, self._on_assigned)
        )
        log.info("kafka_subscribed", topics=self._topics, group_id=k.group_id)
        return consumer

    async def _consume(
        self, stop: asyncio.Event, *, until_caught_up: bool, assignment_timeout: float | None
    ) -> None:
        await self._intake.start()
        try:
            consumer = await self._start()
        except BaseException:
            await self._intake.close()
            raise
        self._consumer = consumer
        catch_up = CatchUp()
        wait = assignment_timeout or 0.0
        deadline = time.monotonic() + wait
        patience = wait + self._kafka.session_timeout_ms / 1000
        behind: SourceError | None = None
        lag = asyncio.create_task(self._sample_lag(consumer), name="kafka-lag")
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(
                    timeout_ms=self._kafka.poll_timeout_ms,
                    max_records=self._kafka.max_batch_records,
                )
                async with self._lock:
                    await self._hand_over(consumer, fetched)
                    self._set_paused(consumer, await self._intake.backpressure())
                if until_caught_up:
                    try:
                        if await self._caught_up(consumer, catch_up, deadline, patience):
                            break
                    except _GroupBehind as exc:
                        behind = exc
                        break
            async with self._lock:
                await self._intake.flush()
                await self._commit(consumer)
            if behind is not None:
                raise behind
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            self._forget_lag(list(self._lag_partitions))
            self._consumer = None
            # What is not stored is not committed either: the next run re-reads it.
            await self._intake.close()
            self._set_paused(consumer, False)
            await consumer.stop()
            log.info("kafka_stopped", **self.summary.fields())

    async def _hand_over(
        self, consumer: AIOKafkaConsumer, fetched: Mapping[TopicPartition, Sequence[Any]]
    ) -> None:
        """Give a fetched batch to the intake (lock held); an empty one flushes it."""
        # Records of a partition revoked (and flushed) while this fetch was in flight
        # are left to its next owner, who reads on from the commit. Track only what this
        # member owns now.
        owned = consumer.assignment()
        by_partition: dict[Partition, list[int]] = {}
        records: list[SourceRecord] = []
        for tp, msgs in fetched.items():
            if tp in self._revoked:
                continue
            records.extend(_source_record(msg) for msg in msgs)
            if tp in owned:
                by_partition[(tp.topic, tp.partition)] = [msg.offset for msg in msgs]
        if not records:
            # Quiet topic or paused: a batch routed in the child is stored now, not when
            # the next batch comes.
            await self._intake.flush()
            return
        for p, offsets in by_partition.items():
            self._tracker.received(p, offsets)
        await self._intake.submit(records, partial(self._durable, consumer, by_partition))

    async def _durable(
        self,
        consumer: AIOKafkaConsumer,
        by_partition: Mapping[Partition, list[int]],
        _result: StoreResult,
    ) -> None:
        """The intake's ack: these offsets are in the outbox; commit what moved."""
        for p, offsets in by_partition.items():
            self._tracker.durable(p, offsets)
        await self._commit(consumer)

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: Collection[Partition] | None = None
    ) -> None:
        positions = positions_to_commit(self._tracker, consumer, only)
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
        self._observer.on_offsets_committed(positions)

    async def _sample_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Set each owned partition's lag (its end minus the committed offset) every
        ``lag_interval_seconds``. The ends are asked of the broker, not taken from the
        fetch's highwater: a paused partition is not fetched, and that is when its lag
        grows."""
        if self._lag is None:
            return
        while True:
            await asyncio.sleep(self._kafka.lag_interval_seconds)
            owned = list(consumer.assignment())
            if not owned:
                continue
            try:
                ends = await consumer.end_offsets(owned)
                for tp, listed in ends.items():
                    # The fetch's highwater too: Tansu (the test broker) lists the end of
                    # a partition short of it (see probes.py); on Kafka both agree.
                    end = max(listed, consumer.highwater(tp) or 0)
                    p = (tp.topic, tp.partition)
                    committed = self._tracker.committed_position(p)
                    if committed is None:  # nothing committed by this member yet
                        committed = await consumer.committed(tp)
                    if committed is None:  # nor by the group ever: read from the start
                        committed = (await consumer.beginning_offsets([tp]))[tp]
                    self._lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))
                    self._lag_partitions.add(p)
            except KafkaError as exc:  # the next sample tries again
                log.debug("consumer_lag_unread", error=str(exc))

    def _forget_lag(self, parts: Iterable[Partition]) -> None:
        """A partition no longer owned is another member's to report."""
        if self._lag is None:
            return
        for topic, partition in parts:
            if (topic, partition) in self._lag_partitions:
                self._lag.remove(topic, str(partition))
                self._lag_partitions.discard((topic, partition))

    def _set_paused(self, consumer: AIOKafkaConsumer, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        tps = list(consumer.assignment())
        if tps:
            if paused:
                consumer.pause(*tps)
            else:
                consumer.resume(*tps)

    async def _caught_up(
        self, consumer: AIOKafkaConsumer, catch_up: CatchUp, deadline: float, patience: float
    ) -> bool:
        """``--once``: the group has committed every partition of the topics to its end
        (raises :class:`_GroupBehind` when it made no progress for ``patience`` s)."""
        assigned = set(consumer.assignment())
        positions = {(tp.topic, tp.partition): await consumer.position(tp) for tp in assigned}
        # Cheap test first: behind the high watermark of the last fetch means not done
        # (that watermark may be low on Tansu, never high). Probe the exact end only
        # for partitions that look done, once each.
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None or positions[(tp.topic, tp.partition)] < highwater:
                catch_up.busy()
                return False
        partitions = set(positions) | self._topic_partitions(consumer)
        if not partitions:
            if time.monotonic() > deadline:
                log.warning("no_partitions_assigned", topics=self._topics)
                return True
            return False
        new = catch_up.missing_ends(partitions)
        if new:
            ends = await probe_end_offsets(
                self._kafka.bootstrap_servers, [TopicPartition(t, p) for t, p in new]
            )
            catch_up.set_ends({(tp.topic, tp.partition): end for tp, end in ends.items()})
        if not catch_up.read_to_end(positions):
            catch_up.busy()
            return False
        # This member has read its own; the rest is held elsewhere (or being handed
        # over): done when the group's commits reach the end there too.
        ask = catch_up.to_ask(partitions - set(positions))
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(consumer.committed(TopicPartition(t, p)) for t, p in ask)),
                _COMMITTED_TIMEOUT,
            )
        except (KafkaError, TimeoutError) as exc:
            # Asked again after the next poll; meanwhile the clock runs on.
            error = str(exc) or type(exc).__name__
            log.warning("committed_offsets_unreadable", error=error)
            waited = catch_up.waited(time.monotonic(), positions, None)
            if waited > patience:
                raise _GroupBehind(
                    f"run --once: the committed offsets of the consumer group "
                    f"{self._kafka.group_id!r} could not be read for {waited:.0f}s: {error}"
                ) from exc
            return False
        behind = catch_up.behind(dict(zip(ask, answers, strict=True)))
        if not behind:
            return True
        waited = catch_up.waited(time.monotonic(), positions, behind)
        if waited == 0:
            log.info(
                "once_waiting_for_group",
                partitions=_fmt_parts(b.partition for b in behind),
                assigned=_fmt_parts(positions),
                patience_seconds=patience,
            )
        if waited > patience:
            members = await probe_group_members(self._kafka.bootstrap_servers, self._kafka.group_id)
            raise _GroupBehind(
                _behind_message(self._kafka.group_id, behind, members, _member_id(consumer), waited)
            )
        return False

    def _topic_partitions(self, consumer: AIOKafkaConsumer) -> set[Partition]:
        """Every partition of the subscribed topics the consumer's metadata knows."""
        return {
            (topic, p) for topic in self._topics for p in consumer.partitions_for_topic(topic) or ()
        }

    # -- rebalance -----------------------------------------------------------------------

    async def _on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        # Wait for every batch submitted (the one being routed included) to be stored,
        # then commit what is durable.
        async with self._lock:
            parts = frozenset((tp.topic, tp.partition) for tp in revoked)
            if self._consumer is not None:
                await self._intake.flush()
                await self._commit(self._consumer, only=parts)
            self._tracker.forget(parts)
            self._forget_lag(parts)
            self._revoked.update(revoked)
        log.info("partitions_revoked", partitions=_fmt_parts(parts))
        self._observer.on_revoked(parts)

    def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        parts = frozenset((tp.topic, tp.partition) for tp in assigned)
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
    observer: KafkaObserver | None = None,
    health: OutboxHealth | None = None,
) -> KafkaSource:
    """The Kafka source for a loaded config: its routes' topics, routed by ``route_record``."""
    intake = source_intake(
        config,
        routes,
        outbox,
        metrics,
        source=SOURCE,
        routing_setting="kafka.routing_workers",
        routing_workers=config.kafka.routing_workers,
        observer=observer,
        health=health,
    )
    return KafkaSource(
        config.kafka, routes.streams_of(SOURCE), intake, observer=observer, metrics=metrics
    )


class _GroupBehind(SourceError):
    """``--once`` waited too long for partitions held by other members."""


def _member_id(consumer: AIOKafkaConsumer) -> str | None:
    # aiokafka keeps it on the coordinator, not in its public API; only for a message.
    member_id = getattr(getattr(consumer, "_coordinator", None), "member_id", None)
    return member_id if isinstance(member_id, str) else None


def _behind_message(
    group_id: str,
    behind: Sequence[Behind],
    members: Sequence[GroupMember] | None,
    own_id: str | None,
    waited: float,
) -> str:
    """Which partitions are short of their end, and who holds them as far as known."""
    short = ", ".join(
        f"{t}:{p} (committed {'nothing' if b.committed is None else b.committed} of {b.end})"
        for b in behind
        for t, p in [b.partition]
    )
    text = (
        f"run --once: {len(behind)} partition(s) are held by other live members of the "
        f"consumer group {group_id!r} and were not committed to their end "
        f"({waited:.0f}s without progress): {short}"
    )
    others = [m for m in members or () if m.member_id != own_id]
    wanted = {b.partition for b in behind}
    holders = []
    for m in others:
        if m.partitions is None:
            continue
        held = sorted(wanted & {(tp.topic, tp.partition) for tp in m.partitions})
        if held:
            holders.append(f"member {m.describe()} holds {', '.join(_fmt_parts(held))}")
    if holders:
        text += "; " + "; ".join(holders)
    elif others:
        names = ", ".join(m.describe() for m in others)
        text += f"; the other members (the broker does not say which holds which): {names}"
    return text + ". Stop them, or run --once again when they have caught up."


def _fmt(positions: Mapping[Partition, int]) -> dict[str, int]:
    return {f"{t}:{p}": pos for (t, p), pos in positions.items()}


def _fmt_parts(parts: Iterable[Partition]) -> list[str]:
    return sorted(f"{t}:{p}" for t, p in parts)
