"""The RabbitMQ source: FastStream's ``RabbitBroker`` with ``AckPolicy.MANUAL``.

Every message is acknowledged only once its batch is durable (:mod:`..feed`); the
channel's ``prefetch_count`` bounds what RabbitMQ hands over unacknowledged, so it also
bounds the bridge's memory, and a paused feed stops the flow at that bound. A message
that became one of our dead letters is rejected without requeue once the dead letter is
stored: RabbitMQ routes it to the queue's ``x-dead-letter-exchange`` when the source
names one (``dead_letter_exchange``), else it is acknowledged.

A crash before the acknowledgement leaves the messages unacknowledged: RabbitMQ delivers
them again (``redelivered``) when the channel closes. A redelivered message has a new
delivery tag, so a record's position is what stays the same: the exchange, the routing
key and the publisher's ``message_id`` (a hash of the body when it set none), and the
outbox refuses it as a duplicate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aio_pika import IncomingMessage
from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import ClassicQueueArgs

from brew_bridge.config.queues import RabbitSourceConfig, redacted_url
from brew_bridge.core.intake import Intake
from brew_bridge.events import SourceRecord
from brew_bridge.sources.feed import Delivered, Feed
from brew_bridge.sources.queue import QueueSource
from brew_bridge.sources.rabbit.acks import Acks

__all__ = ["SOURCE", "build_rabbit_source", "rabbit_record"]

SOURCE = "rabbit"


def rabbit_record(
    name: str,
    body: bytes,
    *,
    exchange: str,
    routing_key: str,
    message_id: str | None,
    headers: dict[str, Any],
    timestamp_ms: int | None,
) -> SourceRecord:
    """A delivered message as a record of source ``name``.

    The position is ``exchange/routing_key/message_id``, stable across redeliveries; a
    message without an id is known by a hash of its body.
    """
    identity = message_id or "sha256:" + hashlib.sha256(body).hexdigest()[:32]
    return SourceRecord(
        source=SOURCE,
        stream=name,
        position=f"{exchange}/{routing_key}/{identity}",
        key=routing_key.encode(),
        value=body,
        headers=tuple((str(k), _header_bytes(v)) for k, v in headers.items()),
        timestamp_ms=timestamp_ms,
    )


def _header_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class _Broker(RabbitBroker):
    """FastStream's broker, sending the last acknowledgements before it closes."""

    def __init__(self, url: str, acks: Acks) -> None:
        # apply_types=False: no dependency injection per message (fast-depends ran the
        # handler's Context parameter through a worker thread for each one, the largest
        # cost measured); the decoder hands the handler the message itself.
        super().__init__(url, logger=None, apply_types=False)
        self.acks = acks

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        await self.acks.drain()
        await super().stop(exc_type, exc_val, exc_tb)


async def _the_message(message: StreamMessage[IncomingMessage]) -> StreamMessage[IncomingMessage]:
    """The handler's argument: the message itself (the body is read raw, never decoded)."""
    return message


def build_rabbit_source(name: str, config: RabbitSourceConfig, intake: Intake) -> QueueSource:
    """The source ``rabbit.<name>``: its broker and subscription, not connected yet."""
    acks = Acks()
    broker = _Broker(config.url.get_secret_value(), acks)
    feed = Feed(
        intake,
        name=f"{SOURCE}.{name}",
        max_batch_records=config.max_batch_records,
        capacity=config.prefetch_count,
    )
    arguments: ClassicQueueArgs = {}
    if config.dead_letter_exchange:
        arguments["x-dead-letter-exchange"] = config.dead_letter_exchange
    queue = RabbitQueue(
        config.queue, durable=True, arguments=arguments or None, routing_key=config.routing_key
    )
    exchange = (
        RabbitExchange(config.exchange, type=ExchangeType(config.exchange_type), durable=True)
        if config.exchange
        else None
    )
    reject_dead = config.dead_letter_exchange is not None

    @broker.subscriber(
        queue,
        exchange,
        channel=Channel(prefetch_count=config.prefetch_count),
        ack_policy=AckPolicy.MANUAL,
        no_reply=True,
        decoder=_the_message,
        title=f"{SOURCE}.{name}",
        description=f"events for the routes reading {SOURCE}.{name}",
    )
    # Any: what the AsyncAPI document says of the payload (the body is taken as it is).
    async def handle(message: Any) -> None:
        raw: IncomingMessage = message.raw_message
        timestamp: datetime | None = raw.timestamp
        if timestamp is not None and timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)  # AMQP timestamps are UTC seconds
        record = rabbit_record(
            name,
            raw.body,
            exchange=raw.exchange or "",
            routing_key=raw.routing_key or "",
            message_id=raw.message_id,
            headers=dict(raw.headers or {}),
            timestamp_ms=int(timestamp.timestamp() * 1000) if timestamp is not None else None,
        )

        ack, reject = acks.received(raw)
        await feed.put([Delivered(record, ack, reject if reject_dead else ack)])

    where = f"{redacted_url(config.url)} queue {config.queue!r}"
    return QueueSource(f"{SOURCE}.{name}", broker, feed, intake, where=where)
