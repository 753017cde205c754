"""The Redis Streams source: a consumer group read through FastStream's ``RedisBroker``.

Three readers share one feed (:mod:`..feed`), and every entry is acknowledged (``XACK``)
only once its batch is durable:

- **New entries**: FastStream's batch ``StreamSub`` (``XREADGROUP >``, ``max_records`` per
  read, ``AckPolicy.MANUAL``). Its handler awaits :meth:`Feed.put`, so a paused feed
  stops the next read.
- **This member's own pending entries, once at start**: ``XREADGROUP`` from id ``0``.
  ``>`` never hands out an entry already delivered, so a bridge restarted after a crash
  under the same consumer name (a pod's name) would otherwise wait ``min_idle_seconds``
  for what it read and did not acknowledge; this takes them back at once. It stops at
  the last id pending at start: everything later is the ``>`` reader's.
- **Other members' pending entries**: our own periodic ``XAUTOCLAIM`` of entries idle
  at least ``min_idle_seconds`` (a member that died), ``max_batch_records`` per call,
  every ``min(min_idle_seconds / 2, 5 s)``. It can also take back this member's own
  entries held longer than that (a long pause): the outbox refuses the second copy.
  Not a second FastStream subscriber with ``min_idle_time``: that one claims with
  ``count=1`` (one round trip and one feed hand-over per entry: 5,000 pending entries
  take 0.59 s of XAUTOCLAIMs alone at count=1, 0.08 s at 500), and FastStream's
  ``claim_min_idle_time`` (``XREADGROUP CLAIM``) needs Redis 8.4. FastStream's nack does
  nothing on Redis either, so claiming is the only way back for an unacknowledged entry.

Acknowledgements are gathered: the feed settles a batch item by item, and the ids it
settles in one go leave as one ``XACK`` (one round trip per batch, not per entry: on
20,000 example events through the example routes, outbox synchronous=FULL, 10-12k
events/s against 5.4-5.6k with one XACK per entry). An entry that became one of our
dead letters is acknowledged as well: Redis has no dead-letter route, our dead letter
has the entry. An entry deleted (trimmed) while pending has nothing to read: it is let go.

A record's position is the entry id (``1700000000000-0``): the same however often the
entry is delivered or claimed, so the outbox refuses it the second time.

Here: the broker and its subscriber; :mod:`.record` turns an entry into a record (pure),
:mod:`.acks` gathers the acknowledgements, :mod:`.claimer` takes pending entries back.
"""

from __future__ import annotations

from types import TracebackType
from typing import Annotated

from faststream import AckPolicy, Context
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import BatchStreamMessage
from redis.asyncio import Redis

from brew_bridge.config.queues import RedisSourceConfig, redacted_url
from brew_bridge.core.intake import Intake
from brew_bridge.sources.feed import Feed
from brew_bridge.sources.queue import QueueSource, no_decoding
from brew_bridge.sources.redis.acks import Acks
from brew_bridge.sources.redis.claimer import Claimer
from brew_bridge.sources.redis.record import SOURCE

__all__ = ["build_redis_source"]


class _StreamBroker(RedisBroker):
    """FastStream's ``RedisBroker`` (what :class:`QueueSource` runs and the AsyncAPI
    document reads), making the group before its subscriber starts (FastStream would
    make it at ``$``: only new entries) and running the claimer beside it."""

    claimer: Claimer | None = None

    async def start(self) -> None:
        client: Redis = await self.connect()
        own_last = await self.claimer.prepare(client) if self.claimer else None
        await super().start()
        if self.claimer is not None:
            self.claimer.start(client, own_last)

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        if self.claimer is not None:
            await self.claimer.stop()
        await super().stop(exc_type, exc_val, exc_tb)


async def _as_they_are(raw: BatchStreamMessage) -> StreamMessage[BatchStreamMessage]:
    """The batch as Redis gave it. FastStream's own parser re-encodes the whole batch as
    JSON and fails on one value that is not UTF-8 (the batch then sits pending, unseen);
    :func:`redis_record` reads every entry's bytes itself."""
    return StreamMessage(raw, b"")


def build_redis_source(name: str, config: RedisSourceConfig, intake: Intake) -> QueueSource:
    """The source ``redis.<name>``: its broker and subscription, not connected yet."""
    # logger=None silences FastStream's own logging, as for RabbitMQ (its TypedDict of
    # broker options leaves None out; the broker accepts it).
    broker = _StreamBroker(config.url.get_secret_value(), logger=None)  # type: ignore[arg-type]
    feed = Feed(intake, name=f"{SOURCE}.{name}", max_batch_records=config.max_batch_records)
    acks = Acks(config.stream, config.group)

    @broker.subscriber(
        stream=StreamSub(
            config.stream,
            group=config.group,
            consumer=config.member,
            batch=True,
            max_records=config.max_batch_records,
            polling_interval=config.polling_interval_ms,
        ),
        ack_policy=AckPolicy.MANUAL,
        parser=_as_they_are,
        decoder=no_decoding,
        no_reply=True,
        title=f"{SOURCE}.{name}",
        description=f"events for the routes reading {SOURCE}.{name}",
    )
    async def handle(
        message: Annotated[StreamMessage[BatchStreamMessage], Context("message")],
    ) -> None:
        raw = message.raw_message
        entries = zip(raw["message_ids"], raw["data"], strict=True)
        # False (closing): the entries stay pending, taken back at the next start.
        await feed.put(acks.delivered(name, config, entries))

    where = f"{redacted_url(config.url)} stream {config.stream!r} group {config.group!r}"
    broker.claimer = Claimer(name, config, feed, acks)
    return QueueSource(f"{SOURCE}.{name}", broker, feed, intake, where=where)
