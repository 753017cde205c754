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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Annotated, Any, Final, cast

import structlog
from faststream import AckPolicy, Context
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import BatchStreamMessage
from faststream.redis.parser.binary import BinaryMessageFormatV1
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from brew_bridge.config.queues import RedisSourceConfig, redacted_url
from brew_bridge.core.intake import Intake
from brew_bridge.events import SourceRecord
from brew_bridge.sources.feed import Delivered, Feed
from brew_bridge.sources.queue import QueueSource

__all__ = ["SOURCE", "build_redis_source", "redis_record"]

log = structlog.get_logger(__name__)

SOURCE = "redis"
# The field FastStream's publisher puts its envelope (body and headers) in.
_ENVELOPE: Final = b"__data__"
# The longest wait between two sweeps for other members' idle entries.
_MAX_SWEEP_SECONDS: Final = 5.0


def redis_record(
    name: str,
    entry_id: bytes | str,
    fields: Mapping[bytes, bytes],
    *,
    value_field: str = "value",
    key_field: str | None = "key",
) -> SourceRecord:
    """A stream entry as a record of source ``name``.

    The position is the entry id; the timestamp is the id's milliseconds (when Redis
    added the entry). The value is ``value_field`` (empty when absent: the intake
    dead-letters it), the key ``key_field``, every other field a header. An entry a
    FastStream publisher wrote (its envelope field) gives its body and headers instead.
    """
    position = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, _ = position.partition("-")
    key: bytes | None
    if _ENVELOPE in fields:
        value, envelope_headers = BinaryMessageFormatV1.parse(fields[_ENVELOPE])
        headers = tuple((str(k), _text_bytes(v)) for k, v in envelope_headers.items())
        key = None
    else:
        value_name, key_name = value_field.encode(), key_field.encode() if key_field else None
        value = fields.get(value_name, b"")
        key = fields.get(key_name) if key_name is not None else None
        headers = tuple(
            (k.decode(errors="replace"), v)
            for k, v in fields.items()
            if k not in (value_name, key_name)
        )
    return SourceRecord(
        source=SOURCE,
        stream=name,
        position=position,
        key=key,
        value=value,
        headers=headers,
        timestamp_ms=int(millis) if millis.isdigit() else None,
    )


def _text_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Acks:
    """The ids settled together, sent as one ``XACK`` once the settling code yields."""

    def __init__(self, stream: str, group: str) -> None:
        self._stream = stream
        self._group = group
        self._client: Redis | None = None
        self._ids: list[bytes] = []
        self._sending: set[asyncio.Task[None]] = set()

    def attach(self, client: Redis) -> None:
        self._client = client

    def settler(self, entry_id: bytes) -> Callable[[], Awaitable[None]]:
        async def settle() -> None:
            if not self._ids:
                task = asyncio.get_running_loop().create_task(self._send())
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            self._ids.append(entry_id)

        return settle

    async def _send(self) -> None:
        ids, self._ids = self._ids, []
        if self._client is None or not ids:
            return
        try:
            await self._client.xack(self._stream, self._group, *ids)
        except Exception as exc:  # unacknowledged: claimed again later, the outbox dedupes
            log.warning("queue_ack_failed", stream=self._stream, entries=len(ids), error=str(exc))

    async def drain(self) -> None:
        """Wait for every ``XACK`` under way (before the connection closes)."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


class _StreamBroker(RedisBroker):
    """FastStream's ``RedisBroker`` (what :class:`QueueSource` runs and the AsyncAPI
    document reads), making the group before its subscriber starts (FastStream would
    make it at ``$``: only new entries) and running the claimer beside it."""

    claimer: _Claimer | None = None

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


class _Claimer:
    """The group made at ``start_at``, and the pending entries taken back: this
    member's own once at start, other members' idle ones periodically."""

    def __init__(self, name: str, config: RedisSourceConfig, feed: Feed, acks: _Acks) -> None:
        self._name = name  # the record's stream; logs say redis.<name>
        self._where = f"{SOURCE}.{name}"
        self._config = config
        self._feed = feed
        self._acks = acks
        self._task: asyncio.Task[None] | None = None

    async def prepare(self, client: Redis) -> str | None:
        """Before the ``>`` reader starts: the group, and the last id this member left
        pending (what is pending now is a former life's)."""
        self._acks.attach(client)
        await self._make_group(client)
        return await self._own_last(client)

    def start(self, client: Redis, own_last: str | None) -> None:
        self._task = asyncio.create_task(self._claim(client, own_last))

    async def stop(self) -> None:
        """No more claims; every ``XACK`` under way sent (before the connection closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._acks.drain()

    async def _make_group(self, client: Redis) -> None:
        """The group at ``start_at`` (FastStream would make it at ``$``: only new entries)."""
        start = "0" if self._config.start_at == "earliest" else "$"
        try:
            await client.xgroup_create(
                self._config.stream, self._config.group, id=start, mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _own_last(self, client: Redis) -> str | None:
        """The last id pending for this member, None when nothing is."""
        config = self._config
        mine = await client.xpending_range(
            config.stream, config.group, min="-", max="+", count=1, consumername=config.member
        )
        if not mine:
            return None
        summary = await client.xpending(config.stream, config.group)
        return _entry_id(summary["max"])

    async def _claim(self, client: Redis, own_last: str | None) -> None:
        try:
            if own_last is not None and not await self._own_pending(client, own_last):
                return
        except Exception as exc:  # left pending: the sweep takes them once idle
            log.warning("redis_claim_failed", source=self._where, error=str(exc))
        sweep = min(self._config.min_idle_seconds / 2, _MAX_SWEEP_SECONDS)
        while True:
            try:
                taken = await self._sweep(client)
            except Exception as exc:  # the connection comes back; FastStream's reader logs too
                log.warning("redis_claim_failed", source=self._where, error=str(exc))
                taken = 0
            if taken < 0:
                return  # the feed is closing
            if taken == 0:
                await asyncio.sleep(sweep)

    async def _own_pending(self, client: Redis, last: str) -> bool:
        """This member's entries pending at start, up to ``last`` (a crash before their
        acks); False when the feed closed meanwhile."""
        config = self._config
        after = "0"
        while True:
            answer = await client.xreadgroup(
                config.group,
                config.member,
                {config.stream: after},
                count=config.max_batch_records,
            )
            entries = [
                e
                for _, batch in cast("_ReadAnswer", answer)
                for e in batch
                if _id_key(e[0]) <= _id_key(last)
            ]
            if not entries:
                return True
            after = _entry_id(entries[-1][0])
            if not await self._hand_over(client, entries):
                return False

    async def _sweep(self, client: Redis) -> int:
        """One pass of ``XAUTOCLAIM`` over the group's pending entries: how many were
        taken, -1 when the feed is closing."""
        config = self._config
        start, taken = "0-0", 0
        while True:
            answer = await client.xautoclaim(
                config.stream,
                config.group,
                config.member,
                min_idle_time=int(config.min_idle_seconds * 1000),
                start_id=start,
                count=config.max_batch_records,
            )
            start, entries = _entry_id(answer[0]), answer[1]
            if entries:
                log.info("redis_entries_claimed", source=self._where, entries=len(entries))
                if not await self._hand_over(client, entries):
                    return -1
                taken += len(entries)
            if start == "0-0":
                return taken

    async def _hand_over(
        self, client: Redis, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]]
    ) -> bool:
        present = [(i, f) for i, f in entries if f]
        gone = [i for i, f in entries if not f]  # trimmed away while pending: nothing to read
        if gone:
            await client.xack(self._config.stream, self._config.group, *gone)
        return await self._feed.put(_delivered(self._name, self._config, present, self._acks))


# What XREADGROUP answers (RESP2, FastStream's connection): per stream, its entries
# (fields None: deleted meanwhile).
_ReadAnswer = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]


def _entry_id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(value: bytes | str) -> tuple[int, int]:
    millis, _, seq = _entry_id(value).partition("-")
    return int(millis), int(seq or 0)


def _delivered(
    name: str,
    config: RedisSourceConfig,
    entries: Iterable[tuple[bytes, Mapping[bytes, bytes]]],
    acks: _Acks,
) -> list[Delivered]:
    items = []
    for entry_id, fields in entries:
        record = redis_record(
            name, entry_id, fields, value_field=config.value_field, key_field=config.key_field
        )
        settle = acks.settler(entry_id)
        items.append(Delivered(record, settle, settle))
    return items


async def _as_they_are(raw: BatchStreamMessage) -> StreamMessage[BatchStreamMessage]:
    """The batch as Redis gave it. FastStream's own parser re-encodes the whole batch as
    JSON and fails on one value that is not UTF-8 (the batch then sits pending, unseen);
    :func:`redis_record` reads every entry's bytes itself."""
    return StreamMessage(raw, b"")


async def _no_body(message: StreamMessage[Any]) -> None:
    """Nothing to decode: the handler reads the raw entries."""


def build_redis_source(name: str, config: RedisSourceConfig, intake: Intake) -> QueueSource:
    """The source ``redis.<name>``: its broker and subscription, not connected yet."""
    # logger=None silences FastStream's own logging, as for RabbitMQ (its TypedDict of
    # broker options leaves None out; the broker accepts it).
    broker = _StreamBroker(config.url.get_secret_value(), logger=None)  # type: ignore[arg-type]
    feed = Feed(intake, name=f"{SOURCE}.{name}", max_batch_records=config.max_batch_records)
    acks = _Acks(config.stream, config.group)

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
        decoder=_no_body,
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
        await feed.put(_delivered(name, config, entries, acks))

    where = f"{redacted_url(config.url)} stream {config.stream!r} group {config.group!r}"
    broker.claimer = _Claimer(name, config, feed, acks)
    return QueueSource(f"{SOURCE}.{name}", broker, feed, intake, where=where)
