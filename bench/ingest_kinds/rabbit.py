"""``bench/ingest.py --source rabbit``: a durable RabbitMQ queue, and the bare aio-pika loop.

Each run reads a fresh queue (``bench-<uid>``): a RabbitMQ queue is consumed, not
re-read, so every measured path gets its own copy of the events.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from ingest_kinds import cpu_seconds

KIND = "rabbit"

URL = "amqp://guest:guest@127.0.0.1:5672/"
# Publisher confirms awaited this many at a time: one by one is ~10x slower.
_PUBLISH_WINDOW = 500


def source_settings(uid: str) -> dict[str, Any]:
    return {"url": URL, "queue": f"bench-{uid}", "prefetch_count": 1000}


async def publish(settings: dict[str, Any], values: list[bytes]) -> None:
    """Persistent messages, each with a message_id (what a publisher that wants
    deduplication sets; the source's position uses it)."""
    prefix = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect(settings["url"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(settings["queue"], durable=True)
        exchange = channel.default_exchange
        for start in range(0, len(values), _PUBLISH_WINDOW):
            window = values[start : start + _PUBLISH_WINDOW]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            value,
                            message_id=f"{prefix}-{start + i}",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=settings["queue"],
                    )
                    for i, value in enumerate(window)
                )
            )
    finally:
        await connection.close()


async def bare_loop(settings: dict[str, Any], expect: int, batch: int, db: str) -> dict[str, Any]:
    """aio-pika consume + json.loads + one executemany per batch + one ack (multiple=True)
    of the batch after its COMMIT: the floor any RabbitMQ-to-SQLite bridge pays."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE events (id TEXT PRIMARY KEY, body BLOB)")
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def arrived(message: AbstractIncomingMessage) -> None:
        inbox.put_nowait(message)

    connection = await aio_pika.connect(settings["url"])
    seen, start, cpu = 0, 0.0, 0.0
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=settings.get("prefetch_count", 1000))
        queue = await channel.declare_queue(settings["queue"], durable=True)
        await queue.consume(arrived)
        while seen < expect:
            messages = [await inbox.get()]
            if not start:
                start, cpu = time.perf_counter(), cpu_seconds()
            while len(messages) < batch and not inbox.empty():
                messages.append(inbox.get_nowait())
            rows = []
            for m in messages:
                json.loads(m.body)
                rows.append((m.message_id, m.body))
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", rows)
            conn.execute("COMMIT")
            await messages[-1].ack(multiple=True)
            seen += len(rows)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        await connection.close()
        conn.close()
    return {"seconds": elapsed, "cpu": cpu, "records": seen}


async def cleanup(settings: dict[str, Any]) -> None:
    connection = await aio_pika.connect(settings["url"])
    try:
        channel = await connection.channel()
        await channel.queue_delete(settings["queue"])
    finally:
        await connection.close()
