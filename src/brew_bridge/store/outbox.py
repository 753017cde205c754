"""The SQLite outbox: the durable point of the bridge.

Sources store each batch here in ONE transaction and only then acknowledge it (commit
an offset, answer a webhook 2xx); the dispatcher and the poller move each delivery and
run through its states from here; dead letters and their redrive live here too. Every
SQL statement of the project is in this package (``sql.py``, ``schema.py`` and here).

Durability. The journal is WAL and ``synchronous`` comes from ``OutboxConfig`` (FULL
by default). In WAL mode NORMAL survives a process crash but not a power loss: the
last commits may roll back. A source acknowledges its records right after the outbox
commit, so a commit rolled back by a power cut would be an event lost for good
(invariant 1); FULL fsyncs the WAL at every commit, which closes that hole. NORMAL is
offered for disposable setups that prefer speed.

States (docs/ARCHITECTURE.md)::

    pending --claim_due--> firing --mark_fired--> fired
    retry_wait --claim_due--> firing --mark_retry--> retry_wait
    firing --release--> pending                      (no attempt counted)
    pending | retry_wait | firing --mark_dead--> dead
    fired | dead --requeue_delivery--> pending       (redrive)

One delivery per ``(route, idempotency_key)``: storing an existing one is a no-op and
counts as a duplicate, so duplicates die before the network (invariant 2). Ingest dead
letters are unique per (record, route, reason): a batch replayed after a crash does not
double them.

stdlib sqlite3 on the hot paths: the outbox needs exact transaction boundaries
(``BEGIN IMMEDIATE`` per batch, committed on another thread), ``ON CONFLICT DO NOTHING``
with row counts, and partial and expression indexes; the schema's migrations go
through sqlite-utils (``schema.py``), and the tests inspect files with it.

Thread safety: one connection per :class:`Outbox`, guarded by a lock, so a method may
be called from a worker thread (``asyncio.to_thread``). Components that run
concurrently may instead open their own :class:`Outbox` on the same file (WAL lets
readers run beside the one writer; ``busy_timeout`` makes writers queue).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from brew_bridge.errors import StoreError
from brew_bridge.events import (
    TERMINAL_STATUSES,
    Reason,
    Routed,
    SourceRecord,
    run_dead_letter_reason,
)
from brew_bridge.store import sql
from brew_bridge.store.batch import insert_batch
from brew_bridge.store.codecs import (
    PreparedRows,
    dead_letter_from_row,
    delivery_from_row,
    dumps,
    listed,
    prepare_rows,
    run_from_row,
)
from brew_bridge.store.connection import connect
from brew_bridge.store.retention import add, prune_chunk
from brew_bridge.store.rows import (
    DeadLetterRow,
    DeliveryRow,
    FiredMark,
    OutboxOverview,
    OutboxStats,
    PruneResult,
    RunRecord,
    StoreResult,
)
from brew_bridge.store.schema import migrate, schema_version
from brew_bridge.store.stats import read_dead_letters_by_reason, read_stats

__all__ = ["Outbox", "StagedBatch"]


class StagedBatch:
    """A batch written in an open transaction (:meth:`Outbox.stage_batch`): nothing of it
    is durable, and the outbox stays locked, until :meth:`commit` returns.

    ``commit`` may run in another thread: it is mostly the fsync of the WAL, during which
    SQLite lets go of the GIL, so the caller can fetch and route its next batch meanwhile.
    """

    __slots__ = ("_outbox", "result")

    def __init__(self, outbox: Outbox, result: StoreResult) -> None:
        self._outbox = outbox
        self.result = result

    def commit(self) -> StoreResult:
        """Make the batch durable and unlock the outbox (on failure: roll back, unlock)."""
        self._outbox._commit()
        return self.result


class Outbox:
    """The outbox database. Open with :meth:`open`; every method is one transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        # Use Outbox.open(): it sets the pragmas and migrates the schema.
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5_000,
        trace: Callable[[str], None] | None = None,
    ) -> Outbox:
        """Open (creating if needed) the outbox file: WAL, pragmas, schema migrated.

        ``trace`` receives every SQL statement as SQLite runs it (debugging, and the
        crash tests, which kill the process just before a ``COMMIT``).
        """
        path = Path(path)
        conn = connect(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        try:
            if trace is not None:
                conn.set_trace_callback(trace)
            migrate(conn, str(path))
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (``PRAGMA user_version``)."""
        with self._read() as c:
            return schema_version(c)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # A transaction is opened by _writing and ended by _commit, or by _abort on any
    # error. A staged batch (stage_batch) commits later, possibly on another thread: a
    # threading.Lock, unlike an RLock, may be released by a thread that did not take it.

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction; IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        with self._writing(mode) as c:
            yield c
        self._commit()

    @contextmanager
    def _writing(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """Lock and open a transaction; the body's errors abort it, success leaves it open."""
        self._lock.acquire()
        try:
            self._conn.execute(f"BEGIN {mode}")
            yield self._conn
        except BaseException as exc:
            self._abort()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"outbox {str(self.path)!r}: {exc}") from exc
            raise

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort()
            raise StoreError(f"outbox {str(self.path)!r}: {exc}") from exc
        self._lock.release()

    def _abort(self) -> None:
        try:
            # A failed ROLLBACK leaves nothing to add to the error being raised.
            with suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        finally:
            self._lock.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"outbox {str(self.path)!r}: {exc}") from exc

    def _state_error(self, c: sqlite3.Connection, delivery_id: int, expected: str) -> StoreError:
        row = c.execute("SELECT state FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        if row is None:
            return StoreError(f"no delivery with id {delivery_id}")
        return StoreError(f"delivery {delivery_id} is {row['state']!r}, expected {expected}")

    # -- ingest ----------------------------------------------------------------------

    def store_batch(self, routed: Sequence[Routed], now: float) -> StoreResult:
        """Store a batch of routed records in ONE transaction.

        Records that produced a delivery or a dead letter are stored byte for byte;
        deliveries whose (route, key) exists are skipped (duplicates); ingest dead letters
        already stored for the same (record, route, reason) are skipped. Dropped records
        are only counted.
        """
        return self.stage_batch(routed, now).commit()

    def stage_batch(self, routed: Sequence[Routed], now: float) -> StagedBatch:
        """:meth:`store_batch`'s writes, with the transaction left open until
        :meth:`StagedBatch.commit`. The outbox is locked until then: the caller must hand
        the commit on (to a thread) without waiting for anything that uses the outbox.
        """
        return self.stage_rows([item.record for item in routed], prepare_rows(routed), now)

    def stage_rows(
        self, records: Sequence[SourceRecord], prepared: Sequence[PreparedRows], now: float
    ) -> StagedBatch:
        """:meth:`stage_batch` for records whose rows :func:`prepare_rows` made (the
        routing child prepares them, so this process only runs the SQL)."""
        with self._writing() as c:
            result = insert_batch(c, records, prepared, now)
        return StagedBatch(self, result)

    def backlog(self, target: str | None = None) -> int:
        """Deliveries still needing work (pending, retry_wait, firing): what backpressure
        counts; ``target``: only that target's."""
        with self._read() as c:
            n: int = c.execute(
                "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retry_wait', 'firing')"
                " AND (?1 IS NULL OR target = ?1)",
                (target,),
            ).fetchone()[0]
            return n

    # -- dispatcher ------------------------------------------------------------------

    def recover_firing(self, target: str | None = None) -> int:
        """At start: rows left ``firing`` by a crash go back to ``pending``; returns how many.

        Their fire may or may not have reached the target; firing again with the same key
        is safe for Brew (it answers an idempotent replay); a target without keys judges
        the unknown outcome itself. ``target``: only that target's rows (None: all).
        """
        with self._tx() as c:
            # "<> 'pending'" lets SQLite find the rows through deliveries_settled.
            return c.execute(
                "UPDATE deliveries SET state = 'pending' "
                "WHERE state <> 'pending' AND state = 'firing' AND (?1 IS NULL OR target = ?1)",
                (target,),
            ).rowcount

    def claim_due(
        self,
        now: float,
        limit: int,
        *,
        ordered: bool = True,
        per_route: bool = True,
        lease_seconds: float = 300.0,
        target: str | None = None,
    ) -> list[DeliveryRow]:
        """Take up to ``limit`` due rows (pending / retry_wait, ``next_attempt_at <= now``).

        Oldest due first; they are set to ``firing`` in the same transaction, leased
        until ``now + lease_seconds`` (:meth:`reclaim_expired`). With ``ordered``, a row
        is skipped while an earlier row with the same ordering key is still pending,
        waiting to retry or firing, so one key's events fire in order; with
        ``per_route`` only an earlier row of the same route holds it back. ``target``:
        only rows that fire at that target (None: every target's).
        """
        if limit <= 0:
            return []
        with self._tx() as c:
            rows = c.execute(
                sql.SELECT_DUE,
                {
                    "now": now,
                    "ordered": int(ordered),
                    "per_route": int(per_route),
                    "limit": limit,
                    "target": target,
                },
            ).fetchall()
            c.executemany(
                "UPDATE deliveries SET state = 'firing', lease_until = ?, "
                "first_attempt_at = COALESCE(first_attempt_at, ?) WHERE id = ?",
                [(now + lease_seconds, now, row["id"]) for row in rows],
            )
        claimed = []
        for row in rows:
            d = delivery_from_row(row)
            first = d.first_attempt_at if d.first_attempt_at is not None else now
            claimed.append(replace(d, state="firing", first_attempt_at=first))
        return claimed

    def reclaim_expired(
        self, now: float, holding: Collection[int] = (), target: str | None = None
    ) -> int:
        """Set back to ``pending`` the firing rows (of ``target``; None: every target's)
        whose lease ran out, but those in ``holding`` (still in the dispatcher's hands);
        returns how many. A row whose outcome could not be recorded fires again with its
        key: the target answers with the runs it started the first time."""
        with self._tx() as c:
            # "<> 'pending'" lets SQLite find the rows through deliveries_settled.
            expired = [
                row[0]
                for row in c.execute(
                    "SELECT id FROM deliveries WHERE state <> 'pending' AND state = 'firing' "
                    "AND lease_until < ? AND (? IS NULL OR target = ?)",
                    (now, target, target),
                )
                if row[0] not in holding
            ]
            c.executemany(
                "UPDATE deliveries SET state = 'pending', lease_until = NULL "
                "WHERE id = ? AND state = 'firing'",
                [(i,) for i in expired],
            )
        return len(expired)

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        """One delivery by id, or None."""
        with self._read() as c:
            row = c.execute(sql.SELECT_DELIVERY, (delivery_id,)).fetchone()
        return None if row is None else delivery_from_row(row)

    def mark_fired(
        self,
        delivery_id: int,
        *,
        instance_id: str | None,
        run_ids: Sequence[str],
        code: str,
        now: float,
        ref: str | None = None,
    ) -> None:
        """firing -> fired, counting the attempt; one ``runs`` row per run id (existing kept),
        each with the target's ``ref``."""
        mark = FiredMark(delivery_id, instance_id, tuple(run_ids), code, now, ref)
        (error,) = self.mark_fired_many([mark])
        if error is not None:
            raise error

    def mark_fired_many(self, marks: Sequence[FiredMark]) -> list[StoreError | None]:
        """:meth:`mark_fired` for each mark, all in ONE transaction (one fsync for fires
        that finished together); per mark, None or the error that mark alone met (its
        row was not ``firing``: nothing of it is written). A failure of the store itself
        raises, and nothing is written."""
        errors: list[StoreError | None] = []
        with self._tx() as c:
            for m in marks:
                if c.execute(
                    sql.MARK_FIRED, (m.now, m.instance_id, m.code, m.delivery_id)
                ).rowcount:
                    c.executemany(
                        sql.INSERT_RUN,
                        [(run_id, m.delivery_id, m.now, m.ref) for run_id in m.run_ids],
                    )
                    errors.append(None)
                else:
                    errors.append(self._state_error(c, m.delivery_id, "'firing'"))
        return errors

    def mark_retry(
        self,
        delivery_id: int,
        *,
        next_attempt_at: float,
        error: Mapping[str, Any],
        now: float,
        count_attempt: bool = True,
    ) -> None:
        """firing -> retry_wait until ``next_attempt_at``, keeping the error."""
        with self._tx() as c:
            changed = c.execute(
                sql.MARK_RETRY,
                (int(count_attempt), next_attempt_at, dumps(dict(error)), now, now, delivery_id),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'firing'")

    def release(self, delivery_id: int) -> None:
        """firing -> pending with no attempt counted (the circuit is open: nothing was sent)."""
        with self._tx() as c:
            changed = c.execute(
                sql.RELEASE,
                (delivery_id,),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'firing'")

    def mark_dead(
        self,
        delivery_id: int,
        *,
        reason: Reason,
        code: str | None,
        message: str,
        error: Mapping[str, Any] | None,
        now: float,
    ) -> int:
        """pending | retry_wait | firing -> dead, writing a ``fire`` dead letter; returns its id.

        From ``firing`` the attempt in flight is counted.
        """
        with self._tx() as c:
            changed = c.execute(
                sql.MARK_DEAD,
                (None if error is None else dumps(dict(error)), now, delivery_id),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'pending', 'retry_wait' or 'firing'")
            cur = c.execute(
                sql.INSERT_DEAD_LETTER_FROM_DELIVERY,
                {
                    "stage": "fire",
                    "reason": str(reason),
                    "code": code,
                    "message": message,
                    "run_id": None,
                    "details": None if error is None else dumps(dict(error)),
                    "now": now,
                    "delivery_id": delivery_id,
                },
            )
            return _lastrowid(cur)

    # -- poller ----------------------------------------------------------------------

    def live_runs(self, limit: int | None = None, target: str | None = None) -> list[RunRecord]:
        """Runs not yet at an end (of ``target``; None: every target's), oldest fire first."""
        with self._read() as c:
            rows = c.execute(
                sql.SELECT_RUNS + " WHERE u.finished_at IS NULL AND (?1 IS NULL OR d.target = ?1)"
                " ORDER BY u.fired_at, u.run_id LIMIT ?2",
                (target, -1 if limit is None else limit),
            ).fetchall()
        return [run_from_row(row) for row in rows]

    def run(self, run_id: str) -> RunRecord | None:
        """One run by id, or None."""
        with self._read() as c:
            row = c.execute(sql.SELECT_RUNS + " WHERE u.run_id = ?", (run_id,)).fetchone()
        return None if row is None else run_from_row(row)

    def run_counts(self, delivery_id: int) -> dict[str, int]:
        """How many runs of one fire are in each status."""
        with self._read() as c:
            rows = c.execute(
                "SELECT status, count(*) FROM runs WHERE delivery_id = ? GROUP BY status",
                (delivery_id,),
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def touch_runs(self, run_ids: Sequence[str], now: float) -> None:
        """Record that these runs were just checked and are still live."""
        with self._tx() as c:
            c.executemany(
                "UPDATE runs SET last_checked_at = ? WHERE run_id = ?",
                [(now, run_id) for run_id in run_ids],
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        now: float,
        error: str | None = None,
        logs: Sequence[Mapping[str, Any]] | None = None,
        output: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Record a run's terminal status. failed / canceled / timed_out also write a
        ``run`` dead letter (the first one's id is returned) carrying the logs and
        ``output`` (what the run produced, when the target says), one for each delivery
        following the run (a run adopted by several). A run already finished is left as
        it was (returns None), so a second report never doubles a dead letter.
        """
        if status not in TERMINAL_STATUSES:
            raise StoreError(
                f"run {run_id}: {status!r} is not a terminal status; "
                f"use one of {sorted(TERMINAL_STATUSES)}"
            )
        with self._tx() as c:
            followers = [
                row[0]
                for row in c.execute(
                    "SELECT delivery_id FROM runs WHERE run_id = ? AND finished_at IS NULL "
                    "ORDER BY delivery_id",
                    (run_id,),
                )
            ]
            if not followers:
                if c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                    raise StoreError(f"no run with id {run_id!r}")
                return None
            c.execute(sql.FINISH_RUN, (status, now, now, error, run_id))
            reason = run_dead_letter_reason(status)
            if reason is None:
                return None
            details: dict[str, Any] = {
                "runId": run_id,
                "status": status,
                "error": error,
                "logs": listed(logs),
            }
            if output is not None:
                details["output"] = dict(output)
            ids = [
                _lastrowid(
                    c.execute(
                        sql.INSERT_DEAD_LETTER_FROM_DELIVERY,
                        {
                            "stage": "run",
                            "reason": str(reason),
                            "code": status,
                            "message": error or f"run {run_id} ended {status}",
                            "run_id": run_id,
                            "details": dumps(details),
                            "now": now,
                            "delivery_id": delivery_id,
                        },
                    )
                )
                for delivery_id in followers
            ]
            return ids[0]

    def refire_run(self, run_id: str, *, now: float, error: str, max_runs: int) -> bool:
        """A run the target canceled as stuck: end it ``canceled`` without a dead letter
        and put each delivery following it back to ``pending`` to fire again, while that
        delivery has started fewer than ``max_runs`` runs. Returns whether every one
        fired again (False: the caller finishes the run as usual, which dead-letters it
        for the deliveries that may not)."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT delivery_id, (SELECT count(*) FROM runs AS o "
                "WHERE o.delivery_id = u.delivery_id) FROM runs AS u "
                "WHERE run_id = ? AND finished_at IS NULL",
                (run_id,),
            ).fetchall()
            every = bool(rows)
            for delivery_id, started in rows:
                if started >= max_runs or c.execute(sql.REFIRE, (now, delivery_id)).rowcount != 1:
                    every = False
                    continue
                c.execute(
                    "UPDATE runs SET status = 'canceled', finished_at = ?, last_checked_at = ?, "
                    "error = ? WHERE run_id = ? AND delivery_id = ?",
                    (now, now, error, run_id, delivery_id),
                )
            return every

    # -- dead letters ----------------------------------------------------------------

    def dead_letters(
        self,
        *,
        reason: str | None = None,
        route: str | None = None,
        since: float | None = None,
        limit: int = 100,
        stage: str | None = None,
        redriven: bool | None = None,
    ) -> list[DeadLetterRow]:
        """Dead letters, newest first, filtered by whichever arguments are given."""
        with self._read() as c:
            return _select_dead_letters(
                c,
                reason=reason,
                route=route,
                since=since,
                limit=limit,
                stage=stage,
                redriven=redriven,
            )

    def dead_letter(self, dead_letter_id: int) -> DeadLetterRow | None:
        """One dead letter by id, or None."""
        with self._read() as c:
            row = c.execute(
                f"SELECT {sql.DEAD_LETTER_COLUMNS} {sql.DEAD_LETTER_FROM} WHERE x.id = ?",
                (dead_letter_id,),
            ).fetchone()
        return None if row is None else dead_letter_from_row(row)

    def requeue_delivery(self, delivery_id: int, *, new_key: str | None, now: float) -> int:
        """Redrive a fired or dead delivery: back to ``pending`` now; returns the delivery id.

        Same key: the row itself is reset (attempts from zero). ``new_key``: a new row
        with that key is queued and the old one is left as it was; if a row with
        that key exists already, its id is returned unchanged, so a redrive retried
        after a crash queues nothing twice. A delivery still queued (pending,
        retry_wait, firing) is left alone and its id returned.
        """
        with self._tx() as c:
            row = c.execute(
                "SELECT route, state FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no delivery with id {delivery_id}")
            if new_key is None:
                c.execute(
                    sql.REQUEUE,
                    (now, delivery_id),
                )
                return delivery_id
            c.execute(
                sql.REQUEUE_WITH_KEY,
                (new_key, now, now, delivery_id),
            )
            new_id: int = c.execute(
                "SELECT id FROM deliveries WHERE route = ? AND idempotency_key = ?",
                (row["route"], new_key),
            ).fetchone()[0]
            return new_id

    def mark_redriven(self, dead_letter_id: int, now: float) -> None:
        """Record that a dead letter was redriven (kept, for the history)."""
        with self._tx() as c:
            changed = c.execute(
                "UPDATE dead_letters SET redriven_at = ? WHERE id = ?", (now, dead_letter_id)
            ).rowcount
            if changed != 1:
                raise StoreError(f"no dead letter with id {dead_letter_id}")

    def unpublished_dead_letters(self, limit: int) -> list[DeadLetterRow]:
        """Dead letters not yet published to the DLQ topic, oldest first."""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {sql.DEAD_LETTER_COLUMNS} {sql.DEAD_LETTER_FROM} "
                "WHERE x.published_at IS NULL ORDER BY x.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [dead_letter_from_row(row) for row in rows]

    def mark_published(self, dead_letter_ids: Sequence[int], *, now: float | None = None) -> None:
        """Record that these dead letters are on the DLQ topic."""
        at = time.time() if now is None else now
        with self._tx() as c:
            c.executemany(
                "UPDATE dead_letters SET published_at = ? WHERE id = ? AND published_at IS NULL",
                [(at, i) for i in dead_letter_ids],
            )

    # -- retention -------------------------------------------------------------------

    def prune(self, before: float, *, dry_run: bool = False) -> PruneResult:
        """Delete finished work older than ``before`` (a Unix time); returns the counts.

        A delivery goes when it is ``fired`` or ``dead``, its fire (or death) is older
        than ``before``, every run it started ended before ``before`` and every dead
        letter of it was redriven before ``before``; its runs and dead letters go with
        it. Redriven ingest dead letters older than ``before`` go too, and then every
        record no delivery or dead letter refers to any more. Pending, retry_wait and
        firing rows, live runs and dead letters not redriven are never touched.

        A pruned delivery no longer refuses its (route, idempotency key): the same event
        replayed later fires again. Keep ``before`` older than anything a source can
        still replay (the Kafka topic's retention).

        Deletes in transactions of at most a thousand deliveries, so ingest never waits
        long for the write lock; ``dry_run`` runs the same deletes in one transaction
        and rolls it back, so its counts are exact and nothing changes.
        """
        total = PruneResult()
        if dry_run:
            with self._writing() as c:
                while (chunk := prune_chunk(c, before)) != PruneResult():
                    total = add(total, chunk)
            self._abort()  # the same deletes, rolled back
            return total
        while True:
            with self._tx() as c:
                chunk = prune_chunk(c, before)
            if chunk == PruneResult():
                return total
            total = add(total, chunk)

    # -- inspection ------------------------------------------------------------------

    def dead_letters_by_reason(self, *, unredriven_only: bool = False) -> dict[str, int]:
        """Dead letter counts per reason (only those not yet redriven, if asked)."""
        with self._read() as c:
            return read_dead_letters_by_reason(c, unredriven_only=unredriven_only)

    def stats(self, now: float) -> OutboxStats:
        """Counts by delivery state, runs, dead letters, and the oldest waiting row's age."""
        with self._tx("DEFERRED") as c:  # one snapshot for all counts
            return read_stats(c, now)

    def overview(self, now: float, *, newest: int) -> OutboxOverview:
        """:meth:`stats`, the dead letters by reason (all, and not redriven) and the
        ``newest`` dead letters, in one read snapshot: the numbers agree with each other."""
        with self._tx("DEFERRED") as c:
            return OutboxOverview(
                stats=read_stats(c, now),
                dead_letters_by_reason=read_dead_letters_by_reason(c, unredriven_only=False),
                not_redriven_by_reason=read_dead_letters_by_reason(c, unredriven_only=True),
                newest_dead_letters=tuple(_select_dead_letters(c, limit=newest)),
            )


def _select_dead_letters(
    c: sqlite3.Connection,
    *,
    reason: str | None = None,
    route: str | None = None,
    since: float | None = None,
    limit: int,
    stage: str | None = None,
    redriven: bool | None = None,
) -> list[DeadLetterRow]:
    params = {
        "reason": None if reason is None else str(reason),
        "route": route,
        "stage": stage,
        "since": since,
        "redriven": None if redriven is None else int(redriven),
        "limit": limit,
    }
    return [dead_letter_from_row(row) for row in c.execute(sql.SELECT_DEAD_LETTERS, params)]


def _lastrowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:  # pragma: no cover - an INSERT always sets it
        raise StoreError("insert did not return a row id")
    return cur.lastrowid
