"""The NATS JetStream source: FastStream's ``NatsBroker``, a durable pull consumer with
``AckPolicy.MANUAL`` fetching batches.

The stream is declared with its subjects when missing; the consumer (``durable``) is
created on first use with ``ack_wait``, and every bridge naming the same durable shares
it: each fetch hands a batch to one of them. A fetched batch goes to the feed, and
``await feed.put`` is what holds back the next fetch while the feed is paused or full,
so what the bridge holds is at most the feed's capacity plus one batch.

Every message is acknowledged with a double ack (the server confirms) only once its
batch is durable (:mod:`..feed`). A message that became one of our dead letters is
terminated (``+TERM``): the server never delivers it again (our dead letter has it) and
publishes a ``MSG_TERMINATED`` advisory, so the broker's own tooling can see it too.

JetStream does not tie unacknowledged messages to a connection: after a crash they are
delivered again only when ``ack_wait`` has passed since their delivery, to whichever
member fetches next. So ``ack_wait`` is the crash-recovery delay. What a live bridge
holds is reported in progress every third of ``ack_wait``, so a long pause or a slow
commit does not make the server deliver it again (and a redelivered copy would only be
refused by the outbox). A record's position is the stream sequence, the same on every
redelivery, with the stream's creation time (``42@1764750000``): a stream deleted and
created again restarts at sequence 1, and its messages must not be taken for the old
stream's (the outbox would refuse their records, and a poison message's dead letter, as
stored already).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from types import TracebackType
from typing import Annotated

from faststream import AckPolicy, Context
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg

from brew_bridge.config.queues import NatsSourceConfig, redacted_url
from brew_bridge.core.intake import Intake
from brew_bridge.events import SourceRecord
from brew_bridge.sources.feed import Delivered, Feed
from brew_bridge.sources.queue import QueueSource, no_decoding

__all__ = ["SOURCE", "build_nats_source", "nats_record"]

SOURCE = "nats"

# How long an ack or a term waits for the server's confirmation.
_ACK_TIMEOUT_SECONDS = 5.0


def nats_record(
    name: str,
    body: bytes,
    *,
    subject: str,
    stream_sequence: int,
    headers: dict[str, str] | None,
    timestamp: datetime | None,
    stream_created: datetime | None = None,
) -> SourceRecord:
    """A delivered message as a record of source ``name``.

    The position is the stream sequence and the stream's creation time in epoch seconds
    (``"42@1764750000"``; ``"42"`` when the server did not say when): JetStream gives each
    stored message a sequence, and every redelivery carries it. The key is the subject it
    was published to.
    """
    position = str(stream_sequence)
    if stream_created is not None:
        position += f"@{int(stream_created.timestamp())}"
    return SourceRecord(
        source=SOURCE,
        stream=name,
        position=position,
        key=subject.encode(),
        value=body,
        headers=tuple((str(k), str(v).encode()) for k, v in (headers or {}).items()),
        timestamp_ms=int(timestamp.timestamp() * 1000) if timestamp is not None else None,
    )


def _delivered(
    name: str, message: Msg, held: dict[str, Msg], stream_created: datetime | None
) -> Delivered:
    metadata = message.metadata
    record = nats_record(
        name,
        message.data,
        subject=message.subject,
        stream_sequence=metadata.sequence.stream,
        headers=message.headers,
        timestamp=metadata.timestamp,
        stream_created=stream_created,
    )
    reply = message.reply

    async def ack() -> None:
        try:
            await message.ack_sync(timeout=_ACK_TIMEOUT_SECONDS)
        finally:  # settled or not, no longer kept alive: if it failed, ack_wait redelivers
            held.pop(reply, None)

    async def term() -> None:
        try:
            # nats-py's term() does not wait; a request does: the server confirms it.
            await message._client.request(reply, Msg.Ack.Term, timeout=_ACK_TIMEOUT_SECONDS)
            message._ackd = True
        finally:
            held.pop(reply, None)

    return Delivered(record, ack, term)


class _Broker(NatsBroker):
    """FastStream's broker (what the AsyncAPI document reads), plus two things JetStream
    needs.

    The first connection is bounded: nats-py retries a server that does not answer
    (every 2 s, here without end, so a broker restart later is ridden out), which would
    leave a bridge started against a wrong URL waiting forever, saying nothing.

    While connected, every message this bridge holds (fetched, not settled yet) is told
    to the server as in progress (``+WPI``) every third of ``ack_wait``: a pause at the
    high-water mark can outlast ``ack_wait``, and the server would otherwise deliver all
    of them again. A crashed bridge sends nothing, so its messages still come back once
    ``ack_wait`` has passed.
    """

    def __init__(
        self, url: str, stream: str, connect_seconds: float, ack_wait_seconds: float
    ) -> None:
        super().__init__(url, logger=None, max_reconnect_attempts=-1, error_cb=self._note_error)
        self.held: dict[str, Msg] = {}  # by reply subject: one per delivery
        self.stream_created: datetime | None = None  # read once connected
        self._stream = stream
        self._connect_seconds = connect_seconds
        self._every = ack_wait_seconds / 3
        self._last_error: Exception | None = None
        self._keeping: asyncio.Task[None] | None = None

    async def _note_error(self, error: Exception) -> None:
        self._last_error = error

    async def start(self) -> None:
        try:
            await asyncio.wait_for(super().start(), self._connect_seconds)
        except TimeoutError:
            error = self._last_error
            last = f": {type(error).__name__}: {error}" if error else ""
            raise ConnectionError(
                "no NATS server answered within "
                f"connect_timeout_seconds={self._connect_seconds:g}{last}"
            ) from None
        # The subscriber declared the stream when it started: it exists now.
        info = await self.config.connection_state.stream.stream_info(self._stream)
        self.stream_created = info.created
        self._keeping = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            for message in list(self.held.values()):
                with contextlib.suppress(Exception):  # reconnecting: the next round retries
                    await message.in_progress()

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        if self._keeping is not None:
            self._keeping.cancel()
            self._keeping = None
        self.held.clear()
        await super().stop(exc_type, exc_val, exc_tb)


def build_nats_source(name: str, config: NatsSourceConfig, intake: Intake) -> QueueSource:
    """The source ``nats.<name>``: its broker and pull subscription, not connected yet."""
    broker = _Broker(
        config.url.get_secret_value(),
        config.stream,
        config.connect_timeout_seconds,
        config.ack_wait_seconds,
    )
    held = broker.held
    feed = Feed(
        intake,
        name=f"{SOURCE}.{name}",
        max_batch_records=config.max_batch_records,
    )
    subject = config.subject or config.subjects[0]

    @broker.subscriber(
        subject,
        stream=JStream(config.stream, subjects=list(config.subjects)),
        durable=config.durable,
        config=ConsumerConfig(ack_wait=config.ack_wait_seconds),
        pull_sub=PullSub(
            config.max_batch_records, batch=True, timeout=config.fetch_timeout_seconds
        ),
        ack_policy=AckPolicy.MANUAL,
        no_reply=True,
        decoder=no_decoding,
        title=f"{SOURCE}.{name}",
        description=f"events for the routes reading {SOURCE}.{name}",
    )
    async def handle(message: Annotated[NatsBatchMessage, Context("message")]) -> None:
        messages = message.raw_message
        held.update((m.reply, m) for m in messages)
        created = broker.stream_created
        if not await feed.put([_delivered(name, m, held, created) for m in messages]):
            # Closing: left unacknowledged (and no longer kept alive), delivered again later.
            for m in messages:
                held.pop(m.reply, None)

    async def settled() -> bool:
        """Nothing left for the durable: none undelivered, none delivered unacked (a
        crashed bridge's: JetStream delivers them again only once ack_wait has passed)."""
        try:
            js = broker.config.connection_state.stream
            info = await js.consumer_info(config.stream, config.durable)
        except Exception:  # not connected (yet, or again): ask on the next round
            return False
        return not info.num_pending and not info.num_ack_pending

    where = f"{redacted_url(config.url)} stream {config.stream!r} consumer {config.durable!r}"
    return QueueSource(f"{SOURCE}.{name}", broker, feed, intake, where=where, settled=settled)
