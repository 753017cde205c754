"""The outbox's ingest insert path: stdlib ``executemany`` against sqlite-utils' ``insert_all``.

Both write the same rows (a record and its delivery per event, batches of 500 in one
transaction each, WAL, synchronous=NORMAL so the disk's fsync does not drown the
difference) into fresh files, in interleaved rounds; medians are reported with the
ratio. ``insert_all(ignore=True)`` is sqlite-utils' nearest equivalent of the outbox's
``ON CONFLICT DO NOTHING`` (it reports no per-row count, which the outbox needs for
duplicates); run with ``.venv/bin/python bench/store_insert.py [--events N]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import sqlite_utils

SCHEMA = (
    "CREATE TABLE records (id INTEGER PRIMARY KEY, source TEXT NOT NULL, stream TEXT NOT NULL,"
    " position TEXT NOT NULL, value BLOB NOT NULL, created_at REAL NOT NULL,"
    " UNIQUE (source, stream, position))",
    "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, route TEXT NOT NULL, action TEXT NOT NULL,"
    " idempotency_key TEXT NOT NULL, payload TEXT NOT NULL, record_id INTEGER NOT NULL,"
    " created_at REAL NOT NULL, UNIQUE (route, idempotency_key))",
)
BATCH = 500


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in SCHEMA:
        conn.execute(statement)
    return conn


def _rows(n: int) -> list[tuple[dict[str, object], dict[str, object]]]:
    payload = json.dumps({"email": "ada@example.com", "firstName": "Ada", "plan": "pro"})
    return [
        (
            {
                "source": "kafka",
                "stream": "signups",
                "position": f"0:{i}",
                "value": b'{"id": "evt_%d"}' % i,
                "created_at": 1.0,
            },
            {
                "route": "welcome",
                "action": "tri_welcome",
                "idempotency_key": f"welcome:evt_{i}",
                "payload": payload,
                "record_id": i + 1,
                "created_at": 1.0,
            },
        )
        for i in range(n)
    ]


def stdlib(path: Path, rows: list[tuple[dict[str, object], dict[str, object]]]) -> float:
    conn = _connect(path)
    records = (
        "INSERT INTO records (source, stream, position, value, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    deliveries = (
        "INSERT INTO deliveries (route, action, idempotency_key, payload, record_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    began = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(records, [tuple(r.values()) for r, _ in chunk])
        conn.executemany(deliveries, [tuple(d.values()) for _, d in chunk])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed


def with_sqlite_utils(path: Path, rows: list[tuple[dict[str, object], dict[str, object]]]) -> float:
    db = sqlite_utils.Database(_connect(path))
    began = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        with db.atomic():
            db["records"].insert_all([r for r, _ in chunk], ignore=True, batch_size=BATCH)
            db["deliveries"].insert_all([d for _, d in chunk], ignore=True, batch_size=BATCH)
    elapsed = time.perf_counter() - began
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = _rows(args.events)
    times: dict[str, list[float]] = {"executemany": [], "sqlite-utils": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, run in (("executemany", stdlib), ("sqlite-utils", with_sqlite_utils)):
                times[name].append(run(Path(tmp) / f"{name}-{round_}.db", rows))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:>13}: {args.events / seconds:>9,.0f} events/s  (median of {args.rounds})")
    print(f"sqlite-utils / executemany: {median['executemany'] / median['sqlite-utils']:.2f}")


if __name__ == "__main__":
    main()
