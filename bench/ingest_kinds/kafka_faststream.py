"""The Kafka source rebuilt on FastStream, for ``bench/ingest.py --source kafka`` only.

Not in src/: it is the candidate measured against the direct aiokafka source
(``brew_bridge.sources.kafka.source``). Same durability rule: a FastStream
``KafkaBroker`` batch subscriber (``batch=True``, ``max_records``, ``AckPolicy.MANUAL``,
so FastStream never commits) hands each batch to the same :class:`Intake` as
``build_kafka_source`` builds; the intake's ack marks the offsets durable in an
:class:`OffsetTracker` and commits its positions through the subscriber's raw aiokafka
consumer (``subscriber.consumer``, what ``faststream.kafka.annotations.Consumer``
injects). Same consumer settings as the direct source. On revocation the intake is
flushed and what is durable committed before the partitions go.

Two things FastStream does not do for us here: its batch subscriber skips the handler on
an empty poll, so a side task flushes the intake once no batch came for
``poll_timeout_ms`` (the direct source flushes on its empty poll), and :meth:`drain`
flushes as soon as the records expected are read (the direct source's drain stops when
its positions reach the end offsets: neither waits for an empty poll); and its default
decoder would ``json.loads`` every record before the intake decodes it again, so the
subscriber's decoder hands the bytes through.

The Kafka crash tests (kill -9 at each of the three points, then a clean drain: nothing
lost, nothing doubled) run against this path as they are: their worker builds the source
``CRASH_WORKER_SOURCE`` names::

    CRASH_WORKER_SOURCE=ingest_kinds.kafka_faststream:FastStreamKafkaSource \
      PYTHONPATH=bench python -m pytest tests/kafka/test_kafka_crash.py -k sigkill
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping
from functools import partial
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from brew_bridge.config import BridgeConfig
from brew_bridge.core.intake import IntakeSummary
from brew_bridge.mapping.routing import CompiledRoutes
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.intake import source_intake
from brew_bridge.sources.kafka.offsets import OffsetTracker, Partition
from brew_bridge.sources.kafka.probes import probe_end_offsets
from brew_bridge.sources.kafka.source import (
    SOURCE,
    KafkaObserver,
    Rebalance,
    _source_record,
    fetch_limits,
    positions_to_commit,
)
from brew_bridge.store import Outbox, StoreResult

KIND = "kafka_faststream"


def _bytes_through(message: Any) -> Any:
    # The intake decodes the JSON (and dead-letters what is not); decoding here too
    # would only double the work.
    return message.body


class FastStreamKafkaSource:
    """One consumer-group member on FastStream feeding the intake; :meth:`drain` reads
    until ``expect`` records are durable and committed."""

    def __init__(
        self,
        config: BridgeConfig,
        routes: CompiledRoutes,
        outbox: Outbox,
        metrics: Metrics,
        *,
        observer: KafkaObserver,
    ) -> None:
        k = config.kafka
        self.intake = source_intake(
            config,
            routes,
            outbox,
            metrics,
            source=SOURCE,
            routing_setting="kafka.routing_workers",
            routing_workers=k.routing_workers,
            observer=observer,
        )
        self._observer = observer
        self._bootstrap = k.bootstrap_servers
        self._topics = sorted(routes.streams_of(SOURCE))
        self._poll_seconds = k.poll_timeout_ms / 1000
        self._tracker = OffsetTracker()
        self._revoked: set[TopicPartition] = set()
        self._lock = asyncio.Lock()  # a batch is never half handed over when revoked
        self._unflushed = False
        self._last_batch = 0.0
        self._paused = False
        self.committed_records = 0
        self._received = 0
        self._expect: int | None = None
        self.broker = KafkaBroker(
            k.bootstrap_servers, client_id=k.client_id, logger=None, consumer_only=True
        )
        self.subscriber = self.broker.subscriber(
            *self._topics,
            batch=True,
            max_records=k.max_batch_records,
            batch_timeout_ms=k.poll_timeout_ms,
            group_id=k.group_id,
            auto_offset_reset=k.auto_offset_reset,
            isolation_level="read_committed",
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            max_poll_interval_ms=k.max_poll_interval_ms,
            **fetch_limits(k),
            listener=Rebalance(self.revoked, self.assigned),
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
            decoder=_bytes_through,
        )

        @self.subscriber
        async def handle(message: KafkaMessage) -> None:
            await self._hand_over(message.raw_message)

    @contextlib.asynccontextmanager
    async def _consuming(self) -> AsyncIterator[None]:
        """The intake and the broker started, the idle flush running; all stopped after."""
        async with self.intake:
            await self.broker.start()
            idle = asyncio.create_task(self._flush_when_idle())
            try:
                yield
            finally:
                idle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await idle
                await self.broker.stop()

    async def drain(self, expect: int, give_up_after: float = 120.0) -> IntakeSummary:
        """Consume until ``expect`` records are committed (or ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        self._expect = expect
        async with self._consuming():
            deadline = loop.time() + give_up_after
            while self.committed_records < expect:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"faststream path: {self.committed_records} of {expect} "
                        f"records committed after {give_up_after:.0f}s"
                    )
                await asyncio.sleep(0.05)
        return self.intake.summary

    async def drain_to_end(self, give_up_after: float = 120.0) -> IntakeSummary:
        """Consume until the group's commits reach the end (read once, at the start) of
        every partition of the topics: ``run --once`` for a single member (the crash
        tests, through tests/kafka/crash_worker.py)."""
        loop = asyncio.get_running_loop()
        async with self._consuming():
            consumer = self.subscriber.consumer
            assert consumer is not None
            deadline = loop.time() + give_up_after
            partitions = [
                TopicPartition(t, p)
                for t in self._topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            ends = await probe_end_offsets(self._bootstrap, partitions)
            while not await self._committed_to(ends):
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"faststream path: not at the end after {give_up_after:.0f}s"
                    )
                await asyncio.sleep(0.1)
        return self.intake.summary

    async def _committed_to(self, ends: Mapping[TopicPartition, int]) -> bool:
        consumer = self.subscriber.consumer
        assert consumer is not None
        for tp, end in ends.items():
            if end == 0:
                continue
            position = self._tracker.committed_position((tp.topic, tp.partition))
            if position is None:  # nothing committed by this member: ask the group's
                position = await consumer.committed(tp)
            if (position or 0) < end:
                return False
        return True

    async def _hand_over(self, msgs: tuple[Any, ...]) -> None:
        consumer = self.subscriber.consumer
        assert consumer is not None  # the handler runs only while the subscriber runs
        async with self._lock:
            self._last_batch = asyncio.get_running_loop().time()
            owned = consumer.assignment()
            by_partition: dict[Partition, list[int]] = {}
            for m in msgs:
                by_partition.setdefault((m.topic, m.partition), []).append(m.offset)
            # Records of a partition revoked while the fetch was in flight are its new
            # owner's; only what this member owns now is tracked (as the direct source).
            keep = {p for p in by_partition if TopicPartition(*p) not in self._revoked} & {
                (tp.topic, tp.partition) for tp in owned
            }
            if len(keep) < len(by_partition):
                msgs = tuple(m for m in msgs if (m.topic, m.partition) in keep)
                by_partition = {p: o for p, o in by_partition.items() if p in keep}
            if not msgs:
                return
            for p, offsets in by_partition.items():
                self._tracker.received(p, offsets)
            await self.intake.submit(
                [_source_record(m) for m in msgs], partial(self._durable, by_partition)
            )
            self._unflushed = True
            self._received += len(msgs)
            if self._expect is not None and self._received >= self._expect:
                # Read to the end: store and commit now, as the direct source's drain
                # does once its positions reach the end offsets.
                await self.intake.flush()
                self._unflushed = False
            self._set_paused(await self.intake.backpressure())

    async def _flush_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._poll_seconds / 4)
            if self._unflushed and loop.time() - self._last_batch >= self._poll_seconds:
                async with self._lock:
                    self._unflushed = False
                    await self.intake.flush()

    async def _durable(
        self, by_partition: Mapping[Partition, list[int]], result: StoreResult
    ) -> None:
        for p, offsets in by_partition.items():
            self._tracker.durable(p, offsets)
        await self._commit()
        self.committed_records += sum(len(o) for o in by_partition.values())

    async def _commit(self, only: Collection[Partition] | None = None) -> None:
        consumer = self.subscriber.consumer
        if consumer is None:
            return
        positions = positions_to_commit(self._tracker, consumer, only)
        if not positions:
            return
        try:
            await consumer.commit({TopicPartition(t, p): pos for (t, p), pos in positions.items()})
        except (CommitFailedError, IllegalStateError, KafkaError):
            return  # re-read by the next owner; the outbox refuses the duplicates
        self._tracker.committed(positions)
        self._observer.on_offsets_committed(positions)

    def _set_paused(self, paused: bool) -> None:
        consumer = self.subscriber.consumer
        if paused == self._paused or consumer is None:
            return
        self._paused = paused
        tps = list(consumer.assignment())
        if tps:
            (consumer.pause if paused else consumer.resume)(*tps)

    async def revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with self._lock:
            parts = frozenset((tp.topic, tp.partition) for tp in revoked)
            await self.intake.flush()
            self._unflushed = False
            await self._commit(only=parts)
            self._tracker.forget(parts)
            self._revoked.update(revoked)

    def assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._tracker.forget((tp.topic, tp.partition) for tp in assigned)
        self._revoked.difference_update(assigned)
