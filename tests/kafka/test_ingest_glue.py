"""Ingest glue without a broker: a batch is routed, stored in one transaction, counted;
a router that raises turns that record into a dead letter instead of stalling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.config import KafkaConfig
from brew_bridge.core.intake import Intake
from brew_bridge.core.routing import RoutingProcess
from brew_bridge.errors import SourceError
from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.source import KafkaSource
from brew_bridge.store import Outbox, StoreResult
from brew_bridge.testing.kafka import free_port


def record(offset: int, value: bytes) -> SourceRecord:
    return SourceRecord("kafka", "t", f"0:{offset}", None, value)


def router(r: SourceRecord) -> Routed:
    if r.value == b"boom":
        raise RuntimeError("a bug in routing")
    if r.value == b"skip":
        return Routed(record=r, dropped=True)
    if r.value == b"bad":
        dl = NewDeadLetter(stage="ingest", reason=Reason.INVALID_JSON, message="not JSON")
        return Routed(record=r, dead_letters=(dl,))
    key = f"r:{r.value.decode()}"
    return Routed(record=r, deliveries=(NewDelivery("r", "brew", "tri", key, {"v": 1}),))


def intake(outbox: Outbox, metrics: Metrics, clock: float = 0.0) -> Intake:
    return Intake(
        router,
        outbox,
        metrics,
        source="kafka",
        high_water=100,
        low_water=50,
        clock=lambda: clock,
    )


async def test_a_batch_is_stored_and_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    with Outbox.open(tmp_path / "o.db") as outbox:
        values = [b"a", b"b", b"a", b"bad", b"skip", b"boom"]
        async with intake(outbox, metrics, clock=123.0) as glue:
            result = await glue.store([record(i, v) for i, v in enumerate(values)])
        assert (result.inserted, result.duplicates, result.dead_letters, result.dropped) == (
            2,
            1,
            2,
            1,
        )
        [boom] = outbox.dead_letters(reason="mapping_error")
        assert boom.message == "routing raised RuntimeError: a bug in routing"
        assert boom.record == record(5, b"boom")
        assert outbox.claim_due(123.0, 10)[0].created_at == 123.0

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("brew_bridge_events_consumed_total", source="kafka") == 6
    assert sample("brew_bridge_events_routed_total", source="kafka", route="r") == 2
    assert sample("brew_bridge_events_duplicate_total", source="kafka", route="r") == 1
    assert sample("brew_bridge_events_dropped_total", source="kafka", reason="no_route") == 1
    for reason in ("invalid_json", "mapping_error"):
        labels = {"stage": "ingest", "route": "", "reason": reason}
        assert sample("brew_bridge_dead_letters_total", **labels) == 1


async def test_an_unreachable_broker_is_a_source_error_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    metrics = Metrics()
    with Outbox.open(tmp_path / "o.db") as outbox:
        source = KafkaSource(KafkaConfig(bootstrap_servers=address), {"t"}, intake(outbox, metrics))
        with pytest.raises(SourceError, match=f"kafka.bootstrap_servers='{address}'"):
            await source.drain()


def test_a_source_needs_topics(tmp_path: Path) -> None:
    metrics = Metrics()
    with (
        Outbox.open(tmp_path / "o.db") as outbox,
        pytest.raises(SourceError, match="no Kafka topics"),
    ):
        KafkaSource(KafkaConfig(), set(), intake(outbox, metrics))


def router_factory() -> Callable[[SourceRecord], Routed]:
    """For the routing child (spawned: it imports this module and calls this)."""
    return router


@pytest.mark.parametrize("child", [False, True], ids=["inline", "routing-child"])
async def test_a_record_older_than_the_outbox_keeps_keys_is_a_stale_replay(
    tmp_path: Path, child: bool
) -> None:
    now = 1_800_000_000.0
    day = 86400.0

    def at(offset: int, value: bytes, age: float | None) -> SourceRecord:
        stamp = None if age is None else int((now - age) * 1000)
        return SourceRecord("kafka", "t", f"0:{offset}", None, value, timestamp_ms=stamp)

    metrics = Metrics()
    routing = (
        RoutingProcess(router_factory, name="test-routing", setting="kafka.routing_workers")
        if child
        else None
    )
    acked: list[StoreResult] = []

    async def ack(result: StoreResult) -> None:
        acked.append(result)

    with Outbox.open(tmp_path / "o.db") as outbox:
        glue = Intake(
            router,
            outbox,
            metrics,
            source="kafka",
            high_water=100,
            low_water=50,
            clock=lambda: now,
            routing=routing,
            stale_after_seconds=15 * day,
        )
        async with glue:
            # A replay from the earliest offset: one record from before the retention.
            batch = [at(1, b"a", 1 * day), at(2, b"b", 20 * day), at(3, b"c", None)]
            await glue.submit(batch, ack)
            await glue.flush()
        [dead] = outbox.dead_letters(reason="stale_replay")
        assert "older than the outbox keeps Idempotency-Keys (15.0 days" in dead.message
        assert dead.record is not None
        assert dead.record.position == "0:2"  # kept byte for byte: it can be redriven
        keys = sorted(row.idempotency_key for row in outbox.claim_due(now, 10))
    assert keys == ["r:a", "r:c"]
    assert [(r.inserted, r.dead_letters) for r in acked] == [(2, 1)]
    labels = {"stage": "ingest", "route": "", "reason": "stale_replay"}
    assert metrics.registry.get_sample_value("brew_bridge_dead_letters_total", labels) == 1
