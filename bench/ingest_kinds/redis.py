"""``bench/ingest.py --source redis``: a Redis stream read by a consumer group, and the bare
redis-py loop.

Each run reads a fresh stream (``bench-<uid>``) with a fresh group from its first entry,
so every measured path gets its own copy of the events.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import time
from typing import Any

from redis.asyncio import Redis

KIND = "redis"

URL = "redis://127.0.0.1:6379/0"
# XADDs sent per pipeline round trip: one by one is several times slower.
_PUBLISH_WINDOW = 1000


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def source_settings(uid: str) -> dict[str, Any]:
    return {"url": URL, "stream": f"bench-{uid}", "consumer": f"bench-{uid}"}


async def publish(settings: dict[str, Any], values: list[bytes]) -> None:
    """Each value as the entry's ``value`` field (the source's default), in order."""
    client = Redis.from_url(settings["url"])
    try:
        for start in range(0, len(values), _PUBLISH_WINDOW):
            async with client.pipeline(transaction=False) as pipe:
                for value in values[start : start + _PUBLISH_WINDOW]:
                    pipe.xadd(settings["stream"], {"value": value})
                await pipe.execute()
    finally:
        await client.aclose()


async def bare_loop(settings: dict[str, Any], expect: int, batch: int, db: str) -> dict[str, Any]:
    """XREADGROUP (``batch`` entries) + json.loads + one executemany per batch + one XACK
    of the batch's ids after its COMMIT: the floor any Redis-Streams-to-SQLite bridge pays."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE events (id TEXT PRIMARY KEY, body BLOB)")
    stream, group = settings["stream"], f"bare-{settings['stream']}"
    client = Redis.from_url(settings["url"])
    seen, start, cpu = 0, 0.0, 0.0
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        while seen < expect:
            answer = await client.xreadgroup(group, "bare", {stream: ">"}, count=batch, block=500)
            entries = [e for _, got in answer for e in got]
            if not entries:
                continue
            if not start:
                start, cpu = time.perf_counter(), cpu_seconds()
            rows = []
            for entry_id, fields in entries:
                json.loads(fields[b"value"])
                rows.append((entry_id.decode(), fields[b"value"]))
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", rows)
            conn.execute("COMMIT")
            await client.xack(stream, group, *(entry_id for entry_id, _ in entries))
            seen += len(rows)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        await client.aclose()
        conn.close()
    return {"seconds": elapsed, "cpu": cpu, "records": seen}


async def cleanup(settings: dict[str, Any]) -> None:
    client = Redis.from_url(settings["url"])
    try:
        await client.delete(settings["stream"])
    finally:
        await client.aclose()
