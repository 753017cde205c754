"""The NATS JetStream kind of the ingest benchmark: its publisher, its source settings
and the bare client loop the bridge is measured against (see bench/ingest.py).

The bare loop is the floor any JetStream-to-SQLite bridge pays on the same server: a
durable pull consumer fetching batches, ``json.loads`` of every message, one
``executemany`` per batch into SQLite (WAL, synchronous=FULL), then every message of the
batch double-acked (the server confirms each), one after the other: with many acks in
flight at once, nats-server 2.9.10 was seen to leave some of a batch pending until
``ack_wait`` although each had been confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sqlite3
import time
from typing import Any

import nats as nats_client  # not bound as ``nats``: that name is this kind's, below
from nats.errors import TimeoutError as FetchTimeout
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

nats = "nats"

URL = "nats://127.0.0.1:4222"
# Publishes in flight at once, each confirmed by the server (PubAck).
_PUBLISH_WINDOW = 1000


def source_settings(uid: str) -> dict[str, Any]:
    """The ``sources.nats.<name>`` entry for a fresh stream named by ``uid``."""
    return {
        "url": URL,
        "stream": f"bench-{uid}",
        "subjects": [f"bench.{uid}"],
        "durable": "brew-bridge",
        "ack_wait_seconds": 60,
        "fetch_timeout_seconds": 0.5,
        "max_batch_records": 500,
    }


async def publish(settings: dict[str, Any], values: list[bytes]) -> None:
    """Create the stream (fresh per run) and put ``values`` on it, each confirmed."""
    client = await nats_client.connect(settings["url"])
    try:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=settings["stream"], subjects=settings["subjects"]))
        subject = settings["subjects"][0]
        for start in range(0, len(values), _PUBLISH_WINDOW):
            acks = [
                await js.publish_async(subject, value)
                for value in values[start : start + _PUBLISH_WINDOW]
            ]
            await asyncio.gather(*acks)
    finally:
        await client.close()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bare_loop(settings: dict[str, Any], expect: int, batch: int, db: str) -> dict[str, Any]:
    """Fetch batches of ``batch`` from a durable of its own, store, ack, until ``expect``
    messages were handled; the wall and CPU seconds from the first message to the last
    ack."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    # The baseline's own table; the project's SQL lives in store/
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body BLOB)")
    client = await nats_client.connect(settings["url"])
    seen, start, cpu = 0, 0.0, 0.0
    try:
        js = client.jetstream()
        sub = await js.pull_subscribe(
            settings["subjects"][0],
            durable=f"bare-{settings['stream']}",
            stream=settings["stream"],
            config=ConsumerConfig(ack_wait=settings.get("ack_wait_seconds", 60)),
        )
        while seen < expect:
            try:
                msgs = await sub.fetch(batch, timeout=settings.get("fetch_timeout_seconds", 0.5))
            except FetchTimeout:
                continue
            if not start:
                start, cpu = time.perf_counter(), _cpu_seconds()
            rows = []
            for m in msgs:
                event = json.loads(m.data)
                rows.append((str(m.metadata.sequence.stream), json.dumps(event).encode()))
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", rows)
            conn.execute("COMMIT")
            for m in msgs:  # in order, as the bridge does (see the module's docstring)
                await m.ack_sync()
            seen += len(msgs)
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    finally:
        await client.close()
        conn.close()
    return {"seconds": elapsed, "cpu": cpu, "records": seen}


async def cleanup(settings: dict[str, Any]) -> None:
    """Delete the stream (and with it every consumer of it)."""
    client = await nats_client.connect(settings["url"])
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(settings["stream"])
    finally:
        await client.close()
