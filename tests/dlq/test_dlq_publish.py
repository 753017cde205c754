"""The DLQ topic and the result topic, against a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from aiokafka import ConsumerRecord
from dlq_support import NOW, Filled, ingest_dead_letter, run_dead_letters

from brew_bridge.config import KafkaConfig
from brew_bridge.errors import SinkError
from brew_bridge.events import Reason
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sinks.kafka import DeadLetterPublisher, ResultPublisher, start_producer
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle, free_port, running_broker

_topics = itertools.count()


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerHandle]:
    with running_broker() as handle:
        yield handle


@pytest.fixture
def topic(broker: BrokerHandle) -> str:
    name = f"out-{next(_topics)}"
    broker.create_topic(name, partitions=1)
    return name


def headers_of(record: ConsumerRecord) -> dict[str, bytes]:
    return dict(record.headers)


def published(metrics: Metrics, kind: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "brew_bridge_kafka_publishes_total", {"topic_kind": kind, "outcome": outcome}
    )
    return value or 0.0


async def test_a_broker_refusing_idempotent_producers_gets_a_plain_acks_all_one(
    broker: BrokerHandle,
) -> None:
    # Tansu's memory engine answers InitProducerId with an error: seen, logged, survived.
    with structlog.testing.capture_logs() as logs:
        producer = await start_producer(KafkaConfig(bootstrap_servers=broker.bootstrap_servers))
    await producer.stop()
    assert [e["event"] for e in logs] == ["kafka_idempotent_producer_refused"]


async def test_an_unreachable_broker_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SinkError, match=f"cannot reach Kafka at {address}"):
        await start_producer(KafkaConfig(bootstrap_servers=address))


async def test_dead_letters_carry_the_original_record_and_why_they_died(
    broker: BrokerHandle, topic: str, filled: Filled
) -> None:
    metrics = Metrics()
    outbox = Outbox.open(filled.path)
    producer = await start_producer(KafkaConfig(bootstrap_servers=broker.bootstrap_servers))
    try:
        publisher = DeadLetterPublisher(outbox, producer, topic, metrics=metrics)
        assert await publisher.publish_pending() == 4
        assert await publisher.publish_pending() == 0  # marked: not sent twice
        assert outbox.unpublished_dead_letters(10) == []
        assert all(d.published_at is not None for d in outbox.dead_letters())
    finally:
        await producer.stop()
        outbox.close()
    assert published(metrics, "dlq", "ok") == 4

    records = broker.read(topic, 4)
    by_id = {int(headers_of(r)["brew-bridge-dead-letter-id"]): r for r in records}
    assert sorted(by_id) == sorted([filled.fire_dl, *filled.run_dls, filled.binary_dl])

    fire = by_id[filled.fire_dl]
    assert fire.key == b"user-1"
    assert fire.value == b'{"id": "e1", "email": "a@example.com"}'
    h = headers_of(fire)
    assert h["trace"] == b"abc"  # the original headers travel too
    assert h["brew-bridge-stage"] == b"fire"
    assert h["brew-bridge-reason"] == b"fire_rejected"
    assert h["brew-bridge-code"] == b"INVALID_REQUEST"
    assert h["brew-bridge-attempts"] == b"1"
    assert h["brew-bridge-first-error-at"] == b"2023-11-14T22:13:21.000Z"
    assert h["brew-bridge-last-error-at"] == b"2023-11-14T22:13:21.000Z"
    assert h["brew-bridge-route"] == b"welcome"
    assert h["brew-bridge-idempotency-key"] == b"welcome:e1"
    assert h["brew-bridge-original-topic"] == b"signups"
    assert h["brew-bridge-original-partition"] == b"0"
    assert h["brew-bridge-original-offset"] == b"1"
    assert h["brew-bridge-value"] == b"original"
    assert h["brew-bridge-message"].startswith(b"Field email must be a string")

    run = by_id[filled.run_dls[0]]
    assert run.value == b'{"id": "e2", "email": "a@example.com"}'  # the fire's source record
    assert headers_of(run)["brew-bridge-reason"] == b"run_failed"
    assert headers_of(run)["brew-bridge-run-id"] in {b"run_a", b"run_b"}

    binary = by_id[filled.binary_dl]
    assert binary.value == b"\xff\xfe not json"
    assert "brew-bridge-code" not in headers_of(binary)  # absent, not empty
    assert "brew-bridge-route" not in headers_of(binary)


async def test_a_value_too_large_to_republish_goes_out_without_it(
    broker: BrokerHandle, topic: str, outbox_path: Path
) -> None:
    big = b"x" * (1_100_000)  # over the producer's 1 MiB request limit
    outbox = Outbox.open(outbox_path)
    producer = await start_producer(KafkaConfig(bootstrap_servers=broker.bootstrap_servers))
    try:
        dl_id = ingest_dead_letter(outbox, 1, big, Reason.TOO_LARGE)
        publisher = DeadLetterPublisher(outbox, producer, topic)
        assert await publisher.publish_pending() == 1
        stored = outbox.dead_letter(dl_id)
        assert stored is not None
        assert stored.record is not None
        assert stored.record.value == big  # the outbox keeps every byte
    finally:
        await producer.stop()
        outbox.close()
    [record] = broker.read(topic, 1)
    assert record.value == b""
    assert record.key == b"user-1"
    h = headers_of(record)
    assert h["brew-bridge-value"] == b"omitted"
    assert h["brew-bridge-value-bytes"] == b"1100000"
    assert h["brew-bridge-reason"] == b"too_large"


async def test_the_publisher_loop_publishes_until_stopped_then_drain_empties_it(
    broker: BrokerHandle, topic: str, outbox_path: Path
) -> None:
    outbox = Outbox.open(outbox_path)
    producer = await start_producer(KafkaConfig(bootstrap_servers=broker.bootstrap_servers))
    stop = asyncio.Event()
    publisher = DeadLetterPublisher(outbox, producer, topic, batch_size=2)
    task = asyncio.create_task(publisher.run(stop, interval=0.05))
    try:
        for offset in range(5):
            ingest_dead_letter(outbox, offset, b"{", Reason.INVALID_JSON)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not outbox.unpublished_dead_letters(10):
                break
            await asyncio.sleep(0.05)
        assert outbox.unpublished_dead_letters(10) == []
        stop.set()
        await asyncio.wait_for(task, 10)
        # Written after the loop stopped (the poller's last cycle): drain() at shutdown.
        for offset in range(5, 10):
            ingest_dead_letter(outbox, offset, b"{", Reason.INVALID_JSON)
        assert await publisher.drain() == 5
        assert outbox.unpublished_dead_letters(10) == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await producer.stop()
        outbox.close()
    assert len(broker.read(topic, 10)) == 10


@pytest.mark.slow
async def test_nothing_is_marked_published_until_the_broker_acknowledges(
    outbox_path: Path,
) -> None:
    metrics = Metrics()
    outbox = Outbox.open(outbox_path)
    with running_broker() as own:
        own.create_topic("dlq", partitions=1)
        producer = await start_producer(
            KafkaConfig(bootstrap_servers=own.bootstrap_servers), request_timeout_ms=2000
        )
        try:
            publisher = DeadLetterPublisher(outbox, producer, "dlq", metrics=metrics)
            ingest_dead_letter(outbox, 1, b"{", Reason.INVALID_JSON)
            assert await publisher.publish_pending() == 1

            own.stop()
            second = ingest_dead_letter(outbox, 2, b"[", Reason.INVALID_JSON)
            assert await publisher.publish_pending() == 0
            assert [d.id for d in outbox.unpublished_dead_letters(10)] == [second]
            assert published(metrics, "dlq", "error") >= 1

            own.start()  # memory storage: the topic is gone with the old broker
            own.create_topic("dlq", partitions=1)
            deadline = time.monotonic() + 30
            while outbox.unpublished_dead_letters(10) and time.monotonic() < deadline:
                await publisher.publish_pending()
            assert outbox.unpublished_dead_letters(10) == []
            records = own.read("dlq", 1)
            assert [r.value for r in records] == [b"["]
        finally:
            await producer.stop()
            outbox.close()


async def test_each_run_end_goes_to_the_result_topic(
    broker: BrokerHandle, topic: str, outbox_path: Path
) -> None:
    metrics = Metrics()
    outbox = Outbox.open(outbox_path)
    producer = await start_producer(KafkaConfig(bootstrap_servers=broker.bootstrap_servers))
    try:
        run_dead_letters(outbox, 1, "welcome:e1", ("run_a",))
        run = outbox.run("run_a")
        assert run is not None
        results = ResultPublisher(producer, topic, metrics=metrics)
        await results.publish_result(
            run, status="failed", finished_at=NOW + 5, error="mailbox unavailable"
        )
        await results.flush()
    finally:
        await producer.stop()
        outbox.close()
    assert published(metrics, "result", "ok") == 1
    [record] = broker.read(topic, 1)
    assert record.key == b"welcome:e1"
    assert headers_of(record) == {
        "brew-bridge-status": b"failed",
        "brew-bridge-route": b"welcome",
    }
    assert json.loads(record.value) == {
        "target": "brew",
        "eventId": "e1",
        "idempotencyKey": "welcome:e1",
        "route": "welcome",
        "triggerEventId": "tri_welcome",
        "deliveryId": run.delivery_id,
        "runId": "run_a",
        "status": "failed",
        "firedAt": "2023-11-14T22:13:21.000Z",
        "finishedAt": "2023-11-14T22:13:25.000Z",
        "durationSeconds": 4.0,
        "error": "mailbox unavailable",
        "output": None,
    }


@pytest.mark.slow
async def test_a_broker_outage_never_holds_up_the_poller(outbox_path: Path) -> None:
    metrics = Metrics()
    outbox = Outbox.open(outbox_path)
    try:
        run_dead_letters(outbox, 1, "welcome:e1", ("run_a",))
        run = outbox.run("run_a")
    finally:
        outbox.close()
    assert run is not None
    with running_broker() as own:
        own.create_topic("results", partitions=1)
        producer = await start_producer(
            KafkaConfig(bootstrap_servers=own.bootstrap_servers), request_timeout_ms=1500
        )
        try:
            results = ResultPublisher(producer, "results", metrics=metrics, max_pending=2)
            await results.publish_result(run, status="completed", finished_at=NOW + 5)
            await results.flush()
            own.stop()
            started = time.monotonic()
            for _ in range(3):
                await results.publish_result(run, status="completed", finished_at=NOW + 5)
            assert time.monotonic() - started < 0.5  # handed over, not waited for
            assert results.pending == 2
            await results.flush()
        finally:
            await producer.stop()
    assert published(metrics, "result", "ok") == 1
    assert published(metrics, "result", "dropped") == 1
    assert published(metrics, "result", "error") == 2
