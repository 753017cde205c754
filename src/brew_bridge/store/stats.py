"""The outbox's counts in one read snapshot: ``brew-bridge outbox stats``, the gauges and
the status page."""

from __future__ import annotations

import sqlite3

from brew_bridge.store.rows import DELIVERY_STATES, LIVE_STATES, OutboxStats

__all__ = ["read_dead_letters_by_reason", "read_stats"]


def read_stats(c: sqlite3.Connection, now: float) -> OutboxStats:
    """Counts by delivery state, runs, dead letters, and the oldest waiting row's age."""
    # Pending rows are not in deliveries_settled: counted as the due index's rows
    # (pending + retry_wait) less the retry_wait ones.
    by_state: dict[str, int] = dict.fromkeys(DELIVERY_STATES, 0)
    for row in c.execute(
        "SELECT state, count(*) FROM deliveries WHERE state <> 'pending' GROUP BY state"
    ):
        by_state[row[0]] = row[1]
    waiting = c.execute(
        "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retry_wait')"
    ).fetchone()[0]
    by_state["pending"] = waiting - by_state["retry_wait"]
    runs: dict[str, int] = {
        row[0]: row[1] for row in c.execute("SELECT status, count(*) FROM runs GROUP BY status")
    }
    live = c.execute("SELECT count(*) FROM runs WHERE finished_at IS NULL").fetchone()[0]
    dl = c.execute(
        "SELECT count(*), count(*) - count(redriven_at), "
        "count(*) - count(published_at) FROM dead_letters"
    ).fetchone()
    oldest = c.execute(
        "SELECT min(created_at) FROM deliveries WHERE state IN ('pending', 'retry_wait')"
    ).fetchone()[0]
    return OutboxStats(
        deliveries=by_state,
        backlog=sum(by_state[s] for s in LIVE_STATES),
        live_runs=live,
        runs_by_status=runs,
        dead_letters=dl[0],
        dead_letters_unredriven=dl[1],
        dead_letters_unpublished=dl[2],
        oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
    )


def read_dead_letters_by_reason(c: sqlite3.Connection, *, unredriven_only: bool) -> dict[str, int]:
    """Dead letter counts per reason (only those not yet redriven, if asked)."""
    rows = c.execute(
        "SELECT reason, count(*) FROM dead_letters "
        "WHERE (? = 0 OR redriven_at IS NULL) GROUP BY reason ORDER BY reason",
        (int(unredriven_only),),
    ).fetchall()
    return {row[0]: row[1] for row in rows}
