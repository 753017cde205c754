"""Ingest glue without a broker: a batch is routed, stored in one transaction, counted;
a router that raises turns that record into a dead letter instead of stalling."""

from __future__ import annotations

from pathlib import Path

import pytest

from brew_bridge.config import KafkaConfig
from brew_bridge.core.intake import Intake
from brew_bridge.errors import SourceError
from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.source import KafkaSource
from brew_bridge.store import Outbox
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
