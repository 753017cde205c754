"""The RabbitMQ source on the real RabbitMQ (:5672): the shared queue checks, and what is
RabbitMQ's own: dead letters rejected to the queue's dead-letter exchange once stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
import queue_checks
from kafka_helpers import outbox_contents
from queue_support import POISON, queue_config, require_broker, run_crash_worker
from rabbit_broker import URL, RabbitBroker

from brew_bridge.config import load_config
from brew_bridge.sources.rabbit import rabbit_record


@pytest.fixture
async def rabbit() -> AsyncIterator[RabbitBroker]:
    require_broker("RabbitMQ", "127.0.0.1", 5672)
    connection = await aio_pika.connect_robust(URL)
    broker = RabbitBroker(connection)
    try:
        yield broker
    finally:
        await broker.cleanup()
        await connection.close()


async def test_samples_fire_once_each_through_rabbitmq(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.samples_fire_once_each(rabbit, tmp_path, uid)


async def test_poison_is_dead_lettered_and_the_queue_moves_on(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.poison_is_dead_lettered_and_the_queue_moves_on(rabbit, tmp_path, uid)


async def test_routing_in_a_child_process_stores_the_same(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.poison_is_dead_lettered_and_the_queue_moves_on(
        rabbit, tmp_path, uid, routing_workers=1
    )


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_outbox_commit", "after_outbox_commit"])
async def test_a_kill_loses_nothing_and_doubles_nothing(
    rabbit: RabbitBroker, tmp_path: Path, uid: str, point: str
) -> None:
    await queue_checks.a_kill_loses_nothing_and_doubles_nothing(rabbit, tmp_path, uid, point)


@pytest.mark.slow
async def test_two_bridges_share_one_queue(rabbit: RabbitBroker, tmp_path: Path, uid: str) -> None:
    await queue_checks.two_bridges_share_the_work(rabbit, tmp_path, uid)


async def test_backpressure_pauses_at_the_high_water_mark(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.backpressure_pauses_at_the_high_water_mark(rabbit, tmp_path, uid)


async def test_a_stop_while_paused_is_prompt(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.a_stop_while_paused_is_prompt(rabbit, tmp_path, uid)


@pytest.mark.slow
async def test_a_full_disk_holds_everything_and_recovers(
    rabbit: RabbitBroker, tmp_path: Path, uid: str, disk: Path
) -> None:
    await queue_checks.a_full_disk_holds_everything_and_recovers(rabbit, tmp_path, uid, disk)


async def test_a_dead_letter_is_redriven_through_the_pipeline(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.a_dead_letter_is_redriven_through_the_pipeline(rabbit, tmp_path, uid)


async def test_a_dead_letter_is_rejected_to_the_dead_letter_exchange_once_stored(
    rabbit: RabbitBroker, tmp_path: Path, uid: str
) -> None:
    dlx, parked = f"dlx-{uid}", f"parked-{uid}"
    async with rabbit.connection.channel() as channel:
        exchange = await channel.declare_exchange(dlx, aio_pika.ExchangeType.FANOUT, durable=True)
        queue = await channel.declare_queue(parked, durable=True)
        await queue.bind(exchange)
    rabbit.declared.add(parked)
    path, streams = queue_config(
        tmp_path / "bridge.yaml", rabbit, uid, source={"dead_letter_exchange": dlx}
    )
    # The bridge declares its queues with the dead-letter exchange: publish after it has.
    first = run_crash_worker(path, "none", 0)
    assert first.returncode == 0, first.stderr[-3000:]
    rabbit.declared.update(streams.values())
    await rabbit.publish(streams["payments"], POISON)
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    _, dead = outbox_contents(load_config(path, env={}).outbox.path)
    assert len({coords for coords, _, _ in dead}) == len(POISON)
    async with rabbit.connection.channel() as channel:
        queue = await channel.declare_queue(parked, durable=True, passive=True)
        bodies = []
        for _ in range(len(POISON)):
            message = await queue.get(timeout=5)
            assert message is not None
            bodies.append(message.body)
            await message.ack()
        exchange_queue = await channel.declare_queue(streams["payments"], passive=True)
        assert exchange_queue.declaration_result.message_count == 0
    assert sorted(bodies) == sorted(POISON)
    async with rabbit.connection.channel() as channel:
        await channel.exchange_delete(dlx)


def test_a_record_is_known_by_its_message_id_across_redeliveries() -> None:
    common = {"exchange": "", "routing_key": "orders", "headers": {}, "timestamp_ms": None}
    a = rabbit_record("orders", b"{}", message_id="m-1", **common)  # type: ignore[arg-type]
    again = rabbit_record("orders", b"{}", message_id="m-1", **common)  # type: ignore[arg-type]
    other = rabbit_record("orders", b"{}", message_id="m-2", **common)  # type: ignore[arg-type]
    unnamed = rabbit_record("orders", b'{"a": 1}', message_id=None, **common)  # type: ignore[arg-type]
    assert a.position == again.position == "/orders/m-1"
    assert other.position != a.position
    assert unnamed.position.startswith("/orders/sha256:")
    assert a.source == "rabbit"
    assert a.stream == "orders"
    assert a.key == b"orders"
