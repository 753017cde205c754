"""One batch of routed records into the outbox tables: the SQL of the ingest path.

Run inside the transaction :meth:`Outbox.stage_rows` opens; the rows come from
:func:`~brew_bridge.store.codecs.prepare_rows`. One ``executemany`` per table and label:
its row count is how many rows were new, so duplicates are counted without a lookup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from brew_bridge.events import SourceRecord
from brew_bridge.store import sql
from brew_bridge.store.codecs import PreparedRows, unstorable_rows
from brew_bridge.store.rows import StoreResult

__all__ = ["insert_batch"]

K = TypeVar("K")


# What one record's values can raise while SQLite binds them (a lone surrogate in a
# string, an integer SQLite cannot hold): that record is at fault, not the store. Any
# other error (disk full, locked, corrupt) fails the whole batch, which is then neither
# stored nor acknowledged.
_RECORD_ERRORS = (
    UnicodeError,
    OverflowError,
    ValueError,
    TypeError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)


def insert_batch(
    c: sqlite3.Connection,
    records: Sequence[SourceRecord],
    prepared: Sequence[PreparedRows],
    now: float,
) -> StoreResult:
    """Insert a batch's records, deliveries and ingest dead letters; what was new.

    A record whose rows cannot be stored does not take its batch down: the batch is
    tried whole, and on such an error again record by record (each in a savepoint),
    and the records at fault become ``unstorable`` dead letters (invariant 5).
    """
    c.execute("SAVEPOINT batch")
    try:
        result = _insert(c, records, prepared, now)
    except _RECORD_ERRORS:
        c.execute("ROLLBACK TO batch")
        result = _one_by_one(c, records, prepared, now)
    c.execute("RELEASE batch")
    return result


def _one_by_one(
    c: sqlite3.Connection,
    records: Sequence[SourceRecord],
    prepared: Sequence[PreparedRows],
    now: float,
) -> StoreResult:
    total = StoreResult()
    for record, rows in zip(records, prepared, strict=True):
        c.execute("SAVEPOINT one")
        try:
            result = _insert(c, [record], [rows], now)
        except _RECORD_ERRORS as exc:
            c.execute("ROLLBACK TO one")
            result = _insert(c, [record], [unstorable_rows(exc)], now)
        c.execute("RELEASE one")
        total = _added(total, result)
    return total


def _added(a: StoreResult, b: StoreResult) -> StoreResult:
    def merged(x: Mapping[K, int], y: Mapping[K, int]) -> dict[K, int]:
        out = dict(x)
        for key, n in y.items():
            out[key] = out.get(key, 0) + n
        return out

    return StoreResult(
        inserted=a.inserted + b.inserted,
        duplicates=a.duplicates + b.duplicates,
        dead_letters=a.dead_letters + b.dead_letters,
        dead_letter_duplicates=a.dead_letter_duplicates + b.dead_letter_duplicates,
        dropped=a.dropped + b.dropped,
        records=a.records + b.records,
        inserted_by_route=merged(a.inserted_by_route, b.inserted_by_route),
        duplicates_by_route=merged(a.duplicates_by_route, b.duplicates_by_route),
        dead_letters_by_reason=merged(a.dead_letters_by_reason, b.dead_letters_by_reason),
        dead_lettered=a.dead_lettered | b.dead_lettered,
    )


def _insert(
    c: sqlite3.Connection,
    records: Sequence[SourceRecord],
    prepared: Sequence[PreparedRows],
    now: float,
) -> StoreResult:
    record_rows: list[tuple[Any, ...]] = []
    # Rows without their record id (known only once the records are inserted), each
    # with its record's index in ``record_rows``.
    deliveries: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
    dead_letters: dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]] = {}
    dropped = 0
    dead_lettered: list[str] = []
    for rec, (headers, delivery_rows, dead_letter_rows, was_dropped) in zip(
        records, prepared, strict=True
    ):
        if not delivery_rows and not dead_letter_rows:
            dropped += was_dropped
            continue
        if not delivery_rows:
            dead_lettered.append(rec.position)
        ref = len(record_rows)
        record_rows.append(
            (
                rec.source,
                rec.stream,
                rec.position,
                rec.key,
                headers,
                rec.value,
                rec.timestamp_ms,
                now,
            )
        )
        for row in delivery_rows:
            deliveries.setdefault(row[0], []).append((ref, (*row, now, now)))
        for row in dead_letter_rows:
            dead_letters.setdefault((row[4] or "", row[1]), []).append((ref, (*row, now, now, now)))
    inserted: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    dl_new: dict[tuple[str, str], int] = {}
    dl_seen = 0
    stored_records = 0
    ids: list[int] = []
    if record_rows:
        stored_records, ids = _insert_records(c, record_rows)
    # One executemany per route: its rowcount is that route's new rows.
    for route, rows in deliveries.items():
        n = c.executemany(sql.INSERT_DELIVERY, [(*row, ids[ref]) for ref, row in rows]).rowcount
        inserted[route] = n
        duplicates[route] = len(rows) - n
    for label, rows in dead_letters.items():
        n = c.executemany(
            sql.INSERT_INGEST_DEAD_LETTER, [(*row, ids[ref]) for ref, row in rows]
        ).rowcount
        dl_new[label] = n
        dl_seen += len(rows) - n
    return StoreResult(
        inserted=sum(inserted.values()),
        duplicates=sum(duplicates.values()),
        dead_letters=sum(dl_new.values()),
        dead_letter_duplicates=dl_seen,
        dropped=dropped,
        records=stored_records,
        inserted_by_route=inserted,
        duplicates_by_route=duplicates,
        dead_letters_by_reason=dl_new,
        dead_lettered=frozenset(dead_lettered),
    )


def _insert_records(
    c: sqlite3.Connection, records: Sequence[tuple[Any, ...]]
) -> tuple[int, list[int]]:
    """Insert a batch's records (those stored already are kept); returns how many were
    new and the id of each record, in order.

    SQLite gives a new row the largest id so far plus one. So when every record was new
    and the largest id grew by exactly their number, record ``i`` has id
    ``before + 1 + i``; otherwise (a replayed batch) each id is looked up.
    """
    before: int = c.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]
    stored: int = c.executemany(sql.INSERT_RECORD, records).rowcount
    if stored == len(records):
        after: int = c.execute("SELECT max(id) FROM records").fetchone()[0]
        if after == before + stored:
            return stored, list(range(before + 1, after + 1))
    return stored, [c.execute(sql.SELECT_RECORD_ID, row[:3]).fetchone()[0] for row in records]
