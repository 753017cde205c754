"""The RabbitMQ acknowledgements, pure: as few frames as possible, never past a message
that is not durable. The messages are stand-ins recording what aio-pika would send."""

from __future__ import annotations

from typing import Any

from brew_bridge.sources.rabbit.acks import Acks


class Channel:
    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []


class Message:
    def __init__(self, channel: Channel, tag: int) -> None:
        self.channel = channel
        self.delivery_tag = tag

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append(("ack", self.delivery_tag, multiple))

    async def reject(self, requeue: bool = False) -> None:
        self.channel.frames.append(("reject", self.delivery_tag, requeue))


def received(acks: Acks, channel: Channel, *tags: int) -> dict[int, Any]:
    return {tag: acks.received(Message(channel, tag)) for tag in tags}  # type: ignore[arg-type]


async def settle(settles: dict[int, Any], *tags: int, reject: bool = False) -> None:
    for tag in tags:
        await settles[tag][1 if reject else 0]()


async def test_a_settled_batch_leaves_as_one_multiple_ack() -> None:
    acks, channel = Acks(), Channel()
    settles = received(acks, channel, 1, 2, 3)
    await settle(settles, 1, 2, 3)
    await acks.drain()
    assert channel.frames == [("ack", 3, True)]


async def test_an_ack_never_passes_a_message_not_settled() -> None:
    acks, channel = Acks(), Channel()
    # Handed over out of order (handlers run as tasks): 2 before 1.
    settles = received(acks, channel, 2, 1, 3, 4)
    await settle(settles, 3, 4)
    await acks.drain()
    assert channel.frames == []  # 1 and 2 are not durable yet
    await settle(settles, 1)
    await acks.drain()
    assert channel.frames == [("ack", 1, True)]
    await settle(settles, 2)
    await acks.drain()
    assert channel.frames == [("ack", 1, True), ("ack", 4, True)]


async def test_a_reject_goes_at_once_and_closes_the_run() -> None:
    acks, channel = Acks(), Channel()
    settles = received(acks, channel, 1, 2, 3)
    await settle(settles, 2, reject=True)
    assert channel.frames == [("reject", 2, False)]
    await settle(settles, 1, 3)
    await acks.drain()
    assert channel.frames == [("reject", 2, False), ("ack", 3, True)]


async def test_a_new_channel_forgets_the_old_tags() -> None:
    acks, old, new = Acks(), Channel(), Channel()
    stale = received(acks, old, 1, 2)
    fresh = received(acks, new, 1)
    await settle(fresh, 1)
    await settle(stale, 2)  # the old channel is gone: its messages come again
    await acks.drain()
    assert new.frames == [("ack", 1, True)]
    assert old.frames == []
