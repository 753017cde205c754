"""Retention: which finished rows may go, deleted a chunk at a time.

See :meth:`Outbox.prune` for the rules; a chunk is one transaction, so ingest never
waits long for the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from brew_bridge.store import sql
from brew_bridge.store.rows import PruneResult

__all__ = ["add", "prune_chunk"]


def prune_chunk(c: sqlite3.Connection, before: float) -> PruneResult:
    def delete(statement: str, keys: Sequence[Any]) -> int:
        return c.executemany(statement, [(k,) for k in keys]).rowcount if keys else 0

    params = {"before": before, "limit": sql.PRUNE_CHUNK}
    victims = c.execute(sql.SELECT_PRUNABLE_DELIVERIES, params).fetchall()
    ids = [row[0] for row in victims]
    ingest = c.execute(sql.SELECT_PRUNABLE_DEAD_LETTERS, params).fetchall()
    records = {row[1] for row in [*victims, *ingest] if row[1] is not None}
    dead_letters = delete("DELETE FROM dead_letters WHERE delivery_id = ?", ids)
    dead_letters += delete("DELETE FROM dead_letters WHERE id = ?", [r[0] for r in ingest])
    runs = delete("DELETE FROM runs WHERE delivery_id = ?", ids)
    deliveries = delete("DELETE FROM deliveries WHERE id = ?", ids)
    gone = delete(sql.DELETE_ORPHAN_RECORD, sorted(records))
    return PruneResult(deliveries, runs, dead_letters, gone)


def add(a: PruneResult, b: PruneResult) -> PruneResult:
    return PruneResult(
        deliveries=a.deliveries + b.deliveries,
        runs=a.runs + b.runs,
        dead_letters=a.dead_letters + b.dead_letters,
        records=a.records + b.records,
    )
