"""Helpers shared by the Kafka tests and the crash worker: what to produce, and what the
outbox file holds (read with sqlite-utils, so no SQL lives outside store/)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import sqlite_utils

from brew_bridge.events import SourceRecord
from brew_bridge.mapping.routing import CompiledRoutes, route_record
from brew_bridge.testing.kafka import BrokerHandle

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "config" / "samples"
FAMILY_TOPIC = {"signup": "signups", "payment": "payments", "order": "orders"}
# Shopify says what happened in a header, not in the body.
SHOPIFY_TOPIC = {
    "orders_create": b"orders/create",
    "orders_fulfilled": b"orders/fulfilled",
    "order_line_items_not_a_list": b"orders/create",
    "order_oversized_note": b"orders/create",
}

Sample = tuple[str, str, bytes, tuple[tuple[str, bytes], ...]]  # name, topic, value, headers


def samples() -> list[Sample]:
    """Every file under config/samples with the example topic (and headers) it belongs on."""
    out: list[Sample] = []
    for path in sorted(SAMPLES.glob("*/*.json")):
        family, name = path.parent.name, path.stem
        if family == "lead":
            continue  # for the other targets' routes, which kafka_routes_only leaves out
        if family == "broken":
            family = next((f for f in FAMILY_TOPIC if name.startswith(f)), "payment")
        headers: tuple[tuple[str, bytes], ...] = ()
        if name in SHOPIFY_TOPIC:
            headers = (("X-Shopify-Topic", SHOPIFY_TOPIC[name]),)
        out.append((name, FAMILY_TOPIC[family], path.read_bytes(), headers))
    return out


def produce_samples(
    broker: BrokerHandle, topics: Mapping[str, str], extra: Iterable[Sample] = ()
) -> list[Sample]:
    produced = [*samples(), *extra]
    for name, topic, value, headers in produced:
        broker.produce(topics[topic], [value], keys=[name.encode()], headers=[headers])
    return produced


def db(path: str | Path) -> sqlite_utils.Database:
    return sqlite_utils.Database(path)


def stored_records(path: str | Path) -> list[SourceRecord]:
    return [
        SourceRecord(
            source=row["source"],
            stream=row["stream"],
            position=row["position"],
            key=row["key"],
            value=row["value"],
            headers=tuple((n, base64.b64decode(v)) for n, v in json.loads(row["headers"])),
            timestamp_ms=row["timestamp_ms"],
        )
        for row in db(path)["records"].rows
    ]


Coords = tuple[str, str]  # stream (topic), position (partition:offset)
DeadKey = tuple[Coords, str | None, str]  # record, route, reason


def outbox_contents(path: str | Path) -> tuple[Counter[tuple[str, str]], Counter[DeadKey]]:
    """(route, key) of every delivery and (record, route, reason) of every ingest dead
    letter, counted: a count above 1 would be a duplicate."""
    d = db(path)
    coords = {r["id"]: (r["stream"], r["position"]) for r in d["records"].rows}
    deliveries = Counter((r["route"], r["idempotency_key"]) for r in d["deliveries"].rows)
    dead = Counter(
        (coords[r["record_id"]], r["route"], r["reason"])
        for r in d["dead_letters"].rows_where("stage = ?", ["ingest"])
    )
    return deliveries, dead


def expected_contents(
    records: Iterable[SourceRecord], routes: CompiledRoutes
) -> tuple[Counter[tuple[str, str]], Counter[DeadKey]]:
    """What routing says the outbox must hold for these records, each exactly once."""
    deliveries: Counter[tuple[str, str]] = Counter()
    dead: Counter[DeadKey] = Counter()
    for record in records:
        routed = route_record(record, routes)
        for d in routed.deliveries:
            deliveries[(d.route, d.idempotency_key)] = 1
        for dl in routed.dead_letters:
            dead[((record.stream, record.position), dl.route, str(dl.reason))] = 1
    return deliveries, dead


async def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``check`` until true, or fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


def committed_to_end(broker: BrokerHandle, group_id: str, topic: str) -> bool:
    """The group's commits stand exactly at the end of every partition of ``topic``
    (an empty partition with nothing committed counts as at its end)."""
    committed = broker.committed(group_id, topic)
    ends = broker.end_offsets(topic)
    return {p: (0 if c is None else c) for p, c in committed.items()} == ends
