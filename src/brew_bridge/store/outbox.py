"""The SQLite outbox: the durable point of the bridge, and every SQL statement it runs.

Sources store each batch here in ONE transaction and only then acknowledge it (commit
the Kafka offset, answer a webhook 2xx); the dispatcher and the poller move each
delivery and run through its states from here; dead letters and their redrive live
here too. Nothing else in the project writes SQL.

Durability. The journal is WAL and ``synchronous`` comes from ``OutboxConfig`` (FULL
by default). In WAL mode NORMAL survives a process crash but not a power loss: the
last commits may roll back. Ingest commits a Kafka offset right after the outbox
commit, so a commit rolled back by a power cut would be an event lost for good
(invariant 1); FULL fsyncs the WAL at every commit, which closes that hole. NORMAL is
offered for disposable setups that prefer speed.

Schema. Versioned with ``PRAGMA user_version``; :data:`_MIGRATIONS` lists the steps,
each applied in its own ``BEGIN IMMEDIATE`` transaction at :meth:`Outbox.open`, which
re-reads the version inside the transaction, so opening is idempotent and two
processes opening one file at once cannot both migrate.

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

sqlite3 rather than sqlite-utils here: the outbox needs exact transaction boundaries
(``BEGIN IMMEDIATE`` per batch), ``ON CONFLICT DO NOTHING`` with row counts,
partial and expression indexes and CHECK constraints, which sqlite-utils' table API
does not express; the tests use sqlite-utils to inspect files without writing SQL.

Thread safety: one connection per :class:`Outbox`, guarded by a lock, so a method may
be called from a worker thread (``asyncio.to_thread``). Components that run
concurrently may instead open their own :class:`Outbox` on the same file (WAL lets
readers run beside the one writer; ``busy_timeout`` makes writers queue).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from brew_bridge.errors import StoreError
from brew_bridge.events import Reason, Routed, SourceRecord

__all__ = [
    "DELIVERY_STATES",
    "LIVE_STATES",
    "SCHEMA_VERSION",
    "TERMINAL_RUN_STATUSES",
    "DeadLetterRow",
    "DeliveryRow",
    "Outbox",
    "OutboxStats",
    "PreparedRows",
    "PruneResult",
    "RunRecord",
    "StagedBatch",
    "StoreResult",
    "prepare_rows",
]

DeliveryState = Literal["pending", "firing", "fired", "retry_wait", "dead"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "firing", "fired", "retry_wait", "dead")
# Rows that still need work: what backpressure counts.
LIVE_STATES: tuple[DeliveryState, ...] = ("pending", "retry_wait", "firing")
TERMINAL_RUN_STATUSES = frozenset(
    {"completed", "partially_completed", "failed", "canceled", "timed_out"}
)
# Terminal run statuses that are failures and become dead letters.
_RUN_DEAD_REASONS: Mapping[str, Reason] = {
    "failed": Reason.RUN_FAILED,
    "canceled": Reason.RUN_CANCELED,
    "timed_out": Reason.RUN_TIMED_OUT,
}
_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "EXTRA"})

# Each entry is one schema version: the statements that take version N-1 to N.
# Append only; never edit a released step.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The original records, byte for byte, so anything can be redriven.
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            topic TEXT NOT NULL,
            "partition" INTEGER NOT NULL,
            "offset" INTEGER NOT NULL,
            key BLOB,
            headers TEXT NOT NULL DEFAULT '[]',   -- JSON [[name, base64 value], ...]
            value BLOB NOT NULL,
            timestamp_ms INTEGER,
            created_at REAL NOT NULL,
            UNIQUE (source, topic, "partition", "offset")
        )
        """,
        """
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            route TEXT NOT NULL,
            trigger_event_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            payload TEXT NOT NULL,                -- JSON object
            ordering_key TEXT,
            event_id TEXT,
            record_id INTEGER REFERENCES records (id),
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'firing', 'fired', 'retry_wait', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            first_attempt_at REAL,
            next_attempt_at REAL NOT NULL,
            fired_at REAL,
            trigger_instance_id TEXT,
            result_code TEXT,
            last_error TEXT,                      -- JSON object
            first_error_at REAL,
            last_error_at REAL,
            UNIQUE (route, idempotency_key)
        )
        """,
        # claim_due walks due rows in order and stops at its limit.
        """
        CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id)
            WHERE state IN ('pending', 'retry_wait')
        """,
        # claim_due(ordered=True): "is an earlier row with this ordering key still live?"
        """
        CREATE INDEX deliveries_ordering ON deliveries (ordering_key, id)
            WHERE state IN ('pending', 'retry_wait', 'firing')
        """,
        # backlog() and stats() count by state without a table scan.
        "CREATE INDEX deliveries_state ON deliveries (state)",
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
            status TEXT NOT NULL DEFAULT 'pending',
            fired_at REAL NOT NULL,
            last_checked_at REAL,
            finished_at REAL,
            error TEXT
        )
        """,
        "CREATE INDEX runs_live ON runs (fired_at, run_id) WHERE finished_at IS NULL",
        "CREATE INDEX runs_delivery ON runs (delivery_id)",
        """
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            stage TEXT NOT NULL CHECK (stage IN ('ingest', 'fire', 'run')),
            reason TEXT NOT NULL,
            code TEXT,
            message TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            route TEXT,
            idempotency_key TEXT,
            delivery_id INTEGER REFERENCES deliveries (id),
            run_id TEXT,
            record_id INTEGER REFERENCES records (id),
            details TEXT,                         -- JSON object
            first_error_at REAL NOT NULL,
            last_error_at REAL NOT NULL,
            created_at REAL NOT NULL,
            redriven_at REAL,
            published_at REAL
        )
        """,
        # A replayed batch must not double its ingest dead letters.
        """
        CREATE UNIQUE INDEX dead_letters_ingest_once
            ON dead_letters (record_id, COALESCE(route, ''), reason) WHERE stage = 'ingest'
        """,
        "CREATE INDEX dead_letters_created ON dead_letters (created_at)",
        "CREATE INDEX dead_letters_unpublished ON dead_letters (id) WHERE published_at IS NULL",
    ),
    (
        # Ingest speed: every new row is 'pending', so an index that leaves pending rows
        # out costs nothing at ingest. Pending and retry_wait rows are counted through
        # deliveries_due, live rows through deliveries_ordering, the rest through this.
        "DROP INDEX deliveries_state",
        "CREATE INDEX deliveries_settled ON deliveries (state) WHERE state <> 'pending'",
        # Retention (Outbox.prune): finding and deleting the rows that point at a pruned
        # delivery or record, which foreign keys check, without scanning the tables.
        "CREATE INDEX deliveries_record ON deliveries (record_id)",
        "CREATE INDEX dead_letters_delivery ON dead_letters (delivery_id)",
        "CREATE INDEX dead_letters_record ON dead_letters (record_id)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_SELECT_RECORD_ID = (
    'SELECT id FROM records WHERE source = ? AND topic = ? AND "partition" = ? AND "offset" = ?'
)
_INSERT_RECORD = """
    INSERT INTO records (source, topic, "partition", "offset", key, headers, value,
                         timestamp_ms, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (source, topic, "partition", "offset") DO NOTHING
"""
_INSERT_DELIVERY = """
    INSERT INTO deliveries (route, trigger_event_id, idempotency_key, payload, ordering_key,
                            event_id, created_at, next_attempt_at, record_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (route, idempotency_key) DO NOTHING
"""
_INSERT_INGEST_DEAD_LETTER = """
    INSERT INTO dead_letters (stage, reason, code, message, route, idempotency_key, details,
                              first_error_at, last_error_at, created_at, record_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""

_DELIVERY_COLUMNS = """
    d.id, d.route, d.trigger_event_id, d.idempotency_key, d.payload, d.ordering_key,
    d.event_id, d.state, d.attempts, d.created_at, d.first_attempt_at, d.next_attempt_at,
    d.last_error,
    r.source AS r_source, r.topic AS r_topic, r."partition" AS r_partition,
    r."offset" AS r_offset, r.key AS r_key, r.headers AS r_headers, r.value AS r_value,
    r.timestamp_ms AS r_timestamp_ms
"""
_SELECT_DUE = f"""
    SELECT {_DELIVERY_COLUMNS}
    -- Walk the due index in order and stop at the limit (the planner would otherwise pick
    -- deliveries_state and sort every due row).
    FROM deliveries AS d INDEXED BY deliveries_due LEFT JOIN records AS r ON r.id = d.record_id
    WHERE d.state IN ('pending', 'retry_wait') AND d.next_attempt_at <= :now
      AND (:ordered = 0 OR d.ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM deliveries AS e
            WHERE e.ordering_key = d.ordering_key AND e.id < d.id
              AND e.state IN ('pending', 'retry_wait', 'firing')))
    ORDER BY d.next_attempt_at, d.id
    LIMIT :limit
"""  # noqa: S608 -- a constant fragment, no input
_SELECT_DELIVERY = f"""
    SELECT {_DELIVERY_COLUMNS}
    FROM deliveries AS d LEFT JOIN records AS r ON r.id = d.record_id
    WHERE d.id = ?
"""  # noqa: S608 -- a constant fragment, no input
_DEAD_LETTER_COLUMNS = """
    x.id, x.stage, x.reason, x.code, x.message, x.attempts, x.route, x.idempotency_key,
    x.delivery_id, x.run_id, x.details, x.first_error_at, x.last_error_at, x.created_at,
    x.redriven_at, x.published_at,
    r.source AS r_source, r.topic AS r_topic, r."partition" AS r_partition,
    r."offset" AS r_offset, r.key AS r_key, r.headers AS r_headers, r.value AS r_value,
    r.timestamp_ms AS r_timestamp_ms
"""
_DEAD_LETTER_FROM = "FROM dead_letters AS x LEFT JOIN records AS r ON r.id = x.record_id"
_SELECT_DEAD_LETTERS = f"""
    SELECT {_DEAD_LETTER_COLUMNS} {_DEAD_LETTER_FROM}
    WHERE (:reason IS NULL OR x.reason = :reason)
      AND (:route IS NULL OR x.route = :route)
      AND (:stage IS NULL OR x.stage = :stage)
      AND (:since IS NULL OR x.created_at >= :since)
      AND (:redriven IS NULL OR (x.redriven_at IS NOT NULL) = :redriven)
    ORDER BY x.id DESC
    LIMIT :limit
"""
_SELECT_RUNS = """
    SELECT u.run_id, u.delivery_id, d.route, d.trigger_event_id, d.idempotency_key,
           u.status, u.fired_at, u.last_checked_at
    FROM runs AS u JOIN deliveries AS d ON d.id = u.delivery_id
"""
# mark_dead / finish_run: one dead letter from a delivery row, in SQL so it is one statement.
_INSERT_DEAD_LETTER_FROM_DELIVERY = """
    INSERT INTO dead_letters (stage, reason, code, message, attempts, route, idempotency_key,
                              delivery_id, run_id, record_id, details, first_error_at,
                              last_error_at, created_at)
    SELECT :stage, :reason, :code, :message, d.attempts, d.route, d.idempotency_key,
           d.id, :run_id, d.record_id, :details, COALESCE(d.first_error_at, :now), :now, :now
    FROM deliveries AS d WHERE d.id = :delivery_id
"""

# Retention: finished deliveries whose every run ended and every dead letter was redriven
# before :before. "<> 'pending'" lets SQLite walk deliveries_settled.
_SELECT_PRUNABLE_DELIVERIES = """
    SELECT d.id, d.record_id FROM deliveries AS d
    WHERE d.state <> 'pending' AND d.state IN ('fired', 'dead')
      AND COALESCE(CASE d.state WHEN 'fired' THEN d.fired_at ELSE d.last_error_at END,
                   d.created_at) < :before
      AND NOT EXISTS (SELECT 1 FROM runs AS u WHERE u.delivery_id = d.id
                      AND (u.finished_at IS NULL OR u.finished_at >= :before))
      AND NOT EXISTS (SELECT 1 FROM dead_letters AS x WHERE x.delivery_id = d.id
                      AND (x.redriven_at IS NULL OR x.redriven_at >= :before))
    LIMIT :limit
"""
# Ingest dead letters (no delivery) redriven before :before.
_SELECT_PRUNABLE_DEAD_LETTERS = """
    SELECT id, record_id FROM dead_letters
    WHERE delivery_id IS NULL AND redriven_at < :before
    LIMIT :limit
"""
_DELETE_ORPHAN_RECORD = """
    DELETE FROM records WHERE id = ?1
      AND NOT EXISTS (SELECT 1 FROM deliveries WHERE record_id = ?1)
      AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE record_id = ?1)
"""
# Rows pruned per transaction, so ingest never waits long for the write lock.
_PRUNE_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one :meth:`Outbox.prune` deleted (or, with ``dry_run``, would delete)."""

    deliveries: int = 0
    runs: int = 0
    dead_letters: int = 0
    records: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one :meth:`Outbox.store_batch` did; the per-label counts feed the metrics."""

    inserted: int = 0  # new deliveries
    duplicates: int = 0  # deliveries whose (route, key) was already there
    dead_letters: int = 0  # new ingest dead letters
    dead_letter_duplicates: int = 0  # ingest dead letters already stored (replayed batch)
    dropped: int = 0  # records dropped on purpose (no route, no_route: drop)
    records: int = 0  # source records newly stored
    inserted_by_route: Mapping[str, int] = field(default_factory=dict)
    duplicates_by_route: Mapping[str, int] = field(default_factory=dict)
    # (route or "", reason) -> new dead letters
    dead_letters_by_reason: Mapping[tuple[str, str], int] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery as the dispatcher sees it."""

    id: int
    route: str
    trigger_event_id: str
    idempotency_key: str
    payload: dict[str, Any]
    ordering_key: str | None
    event_id: str | None
    state: DeliveryState
    attempts: int
    created_at: float
    first_attempt_at: float | None
    next_attempt_at: float
    last_error: dict[str, Any] | None
    record: SourceRecord | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One automation run started by a fire, as the poller sees it."""

    run_id: str
    delivery_id: int
    route: str
    trigger_event_id: str
    idempotency_key: str
    status: str
    fired_at: float
    last_checked_at: float | None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One dead letter with everything needed to understand and redrive it."""

    id: int
    stage: str
    reason: str
    code: str | None
    message: str
    attempts: int
    route: str | None
    idempotency_key: str | None
    delivery_id: int | None
    run_id: str | None
    details: dict[str, Any] | None
    record: SourceRecord | None
    first_error_at: float
    last_error_at: float
    created_at: float
    redriven_at: float | None
    published_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts for metrics and ``brew-bridge outbox stats``."""

    deliveries: Mapping[str, int]  # every state in DELIVERY_STATES, zero included
    backlog: int  # pending + retry_wait + firing
    live_runs: int
    runs_by_status: Mapping[str, int]
    dead_letters: int
    dead_letters_unredriven: int
    dead_letters_unpublished: int
    oldest_pending_age: float | None  # seconds since the oldest pending/retry_wait row arrived


# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _loads_obj(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _headers_to_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    if not headers:
        return "[]"
    return _dumps([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def _headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, base64.b64decode(value)) for name, value in json.loads(text))


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
    stored: int = c.executemany(_INSERT_RECORD, records).rowcount
    if stored == len(records):
        after: int = c.execute("SELECT max(id) FROM records").fetchone()[0]
        if after == before + stored:
            return stored, list(range(before + 1, after + 1))
    return stored, [c.execute(_SELECT_RECORD_ID, row[:4]).fetchone()[0] for row in records]


# What a routed record adds to the outbox, as plain values in the order of the INSERTs
# (the batch's time and the record's id are added when it is stored): the headers as
# JSON, the delivery rows, the ingest dead-letter rows, and whether it was dropped.
PreparedRows = tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]], bool]


def prepare_rows(routed: Iterable[Routed]) -> list[PreparedRows]:
    """The rows each routed record becomes. Pure: the routing child runs it, and plain
    tuples cross a process boundary several times faster than the dataclasses."""
    out: list[PreparedRows] = []
    for item in routed:
        if not item.deliveries and not item.dead_letters:
            out.append(("", [], [], item.dropped))
            continue
        out.append(
            (
                _headers_to_json(item.record.headers),
                [
                    (
                        d.route,
                        d.trigger_event_id,
                        d.idempotency_key,
                        _dumps(d.payload),
                        d.ordering_key,
                        d.event_id,
                    )
                    for d in item.deliveries
                ],
                [
                    (
                        dl.stage,
                        str(dl.reason),
                        dl.code,
                        dl.message,
                        dl.route,
                        dl.idempotency_key,
                        None if dl.details is None else _dumps(dl.details),
                    )
                    for dl in item.dead_letters
                ],
                item.dropped,
            )
        )
    return out


def _record_from_row(row: sqlite3.Row) -> SourceRecord | None:
    if row["r_source"] is None:
        return None
    return SourceRecord(
        source=row["r_source"],
        topic=row["r_topic"],
        partition=row["r_partition"],
        offset=row["r_offset"],
        key=row["r_key"],
        value=row["r_value"],
        headers=_headers_from_json(row["r_headers"]),
        timestamp_ms=row["r_timestamp_ms"],
    )


def _delivery_from_row(row: sqlite3.Row) -> DeliveryRow:
    return DeliveryRow(
        id=row["id"],
        route=row["route"],
        trigger_event_id=row["trigger_event_id"],
        idempotency_key=row["idempotency_key"],
        payload=json.loads(row["payload"]),
        ordering_key=row["ordering_key"],
        event_id=row["event_id"],
        state=row["state"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        first_attempt_at=row["first_attempt_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=_loads_obj(row["last_error"]),
        record=_record_from_row(row),
    )


def _dead_letter_from_row(row: sqlite3.Row) -> DeadLetterRow:
    return DeadLetterRow(
        id=row["id"],
        stage=row["stage"],
        reason=row["reason"],
        code=row["code"],
        message=row["message"],
        attempts=row["attempts"],
        route=row["route"],
        idempotency_key=row["idempotency_key"],
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        details=_loads_obj(row["details"]),
        record=_record_from_row(row),
        first_error_at=row["first_error_at"],
        last_error_at=row["last_error_at"],
        created_at=row["created_at"],
        redriven_at=row["redriven_at"],
        published_at=row["published_at"],
    )


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        delivery_id=row["delivery_id"],
        route=row["route"],
        trigger_event_id=row["trigger_event_id"],
        idempotency_key=row["idempotency_key"],
        status=row["status"],
        fired_at=row["fired_at"],
        last_checked_at=row["last_checked_at"],
    )


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
        sync = synchronous.upper()
        if sync not in _SYNCHRONOUS:
            raise StoreError(
                f"outbox.synchronous is {synchronous!r}; use FULL (survives power loss) "
                "or NORMAL (survives a process crash only)"
            )
        if not path.parent.is_dir():
            raise StoreError(
                f"outbox.path {str(path)!r}: directory {str(path.parent)!r} does not exist; "
                "create it or point outbox.path at a writable directory"
            )
        try:
            # Autocommit mode (isolation_level=None): transactions are opened explicitly,
            # so their boundaries are exactly the ones this module names.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"outbox.path {str(path)!r}: cannot open: {exc}") from exc
        conn.row_factory = sqlite3.Row
        outbox = cls(conn, path)
        try:
            outbox._configure(sync, busy_timeout_ms)
            if trace is not None:
                conn.set_trace_callback(trace)
            outbox._migrate()
        except BaseException:
            conn.close()
            raise
        return outbox

    def _configure(self, synchronous: str, busy_timeout_ms: int) -> None:
        try:
            # Set first, so that even switching the journal mode waits instead of failing.
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {str(self.path)!r}: cannot configure: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(
                f"outbox {str(self.path)!r}: SQLite refused WAL mode (got {mode!r}); put "
                "outbox.path on a local filesystem (WAL does not work on network filesystems)"
            )

    def _migrate(self) -> None:
        found = self.schema_version
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"outbox {str(self.path)!r} has schema version {found}, newer than this "
                f"brew-bridge knows ({SCHEMA_VERSION}); upgrade brew-bridge or use another file"
            )
        for version, statements in enumerate(_MIGRATIONS, start=1):
            with self._tx() as c:
                # Re-read inside the write lock: another process may have migrated meanwhile.
                if c.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue
                for statement in statements:
                    c.execute(statement)
                c.execute(f"PRAGMA user_version = {version}")

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (``PRAGMA user_version``)."""
        with self._read() as c:
            version: int = c.execute("PRAGMA user_version").fetchone()[0]
            return version

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
        record_rows: list[tuple[Any, ...]] = []
        # Rows without their record id (known only once the records are inserted), each
        # with its record's index in ``record_rows``.
        deliveries: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
        dead_letters: dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]] = {}
        dropped = 0
        for rec, (headers, delivery_rows, dead_letter_rows, was_dropped) in zip(
            records, prepared, strict=True
        ):
            if not delivery_rows and not dead_letter_rows:
                dropped += was_dropped
                continue
            ref = len(record_rows)
            record_rows.append(
                (
                    rec.source,
                    rec.topic,
                    rec.partition,
                    rec.offset,
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
                dead_letters.setdefault((row[4] or "", row[1]), []).append(
                    (ref, (*row, now, now, now))
                )
        inserted: dict[str, int] = {}
        duplicates: dict[str, int] = {}
        dl_new: dict[tuple[str, str], int] = {}
        dl_seen = 0
        stored_records = 0
        ids: list[int] = []
        with self._writing() as c:
            if record_rows:
                stored_records, ids = _insert_records(c, record_rows)
            # One executemany per route: its rowcount is that route's new rows.
            for route, rows in deliveries.items():
                n = c.executemany(
                    _INSERT_DELIVERY, [(*row, ids[ref]) for ref, row in rows]
                ).rowcount
                inserted[route] = n
                duplicates[route] = len(rows) - n
            for label, rows in dead_letters.items():
                n = c.executemany(
                    _INSERT_INGEST_DEAD_LETTER, [(*row, ids[ref]) for ref, row in rows]
                ).rowcount
                dl_new[label] = n
                dl_seen += len(rows) - n
        return StagedBatch(
            self,
            StoreResult(
                inserted=sum(inserted.values()),
                duplicates=sum(duplicates.values()),
                dead_letters=sum(dl_new.values()),
                dead_letter_duplicates=dl_seen,
                dropped=dropped,
                records=stored_records,
                inserted_by_route=inserted,
                duplicates_by_route=duplicates,
                dead_letters_by_reason=dl_new,
            ),
        )

    def backlog(self) -> int:
        """Deliveries still needing work (pending, retry_wait, firing): what backpressure counts."""
        with self._read() as c:
            n: int = c.execute(
                "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retry_wait', 'firing')"
            ).fetchone()[0]
            return n

    # -- dispatcher ------------------------------------------------------------------

    def recover_firing(self) -> int:
        """At start: rows left ``firing`` by a crash go back to ``pending``; returns how many.

        Their fire may or may not have reached Brew; firing again with the same key is
        safe (Brew answers an idempotent replay).
        """
        with self._tx() as c:
            # "<> 'pending'" lets SQLite find the rows through deliveries_settled.
            return c.execute(
                "UPDATE deliveries SET state = 'pending' "
                "WHERE state <> 'pending' AND state = 'firing'"
            ).rowcount

    def claim_due(self, now: float, limit: int, *, ordered: bool = True) -> list[DeliveryRow]:
        """Take up to ``limit`` due rows (pending / retry_wait, ``next_attempt_at <= now``).

        Oldest due first; they are set to ``firing`` in the same transaction. With
        ``ordered``, a row is skipped while an earlier row with the same ordering key is
        still pending, waiting to retry or firing, so one key's events fire in order.
        """
        if limit <= 0:
            return []
        with self._tx() as c:
            rows = c.execute(
                _SELECT_DUE, {"now": now, "ordered": int(ordered), "limit": limit}
            ).fetchall()
            c.executemany(
                "UPDATE deliveries SET state = 'firing', "
                "first_attempt_at = COALESCE(first_attempt_at, ?) WHERE id = ?",
                [(now, row["id"]) for row in rows],
            )
        claimed = []
        for row in rows:
            d = _delivery_from_row(row)
            first = d.first_attempt_at if d.first_attempt_at is not None else now
            claimed.append(replace(d, state="firing", first_attempt_at=first))
        return claimed

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        """One delivery by id, or None."""
        with self._read() as c:
            row = c.execute(_SELECT_DELIVERY, (delivery_id,)).fetchone()
        return None if row is None else _delivery_from_row(row)

    def mark_fired(
        self,
        delivery_id: int,
        *,
        trigger_instance_id: str | None,
        run_ids: Sequence[str],
        code: str,
        now: float,
    ) -> None:
        """firing -> fired, counting the attempt; one ``runs`` row per run id (existing kept)."""
        with self._tx() as c:
            changed = c.execute(
                "UPDATE deliveries SET state = 'fired', attempts = attempts + 1, fired_at = ?, "
                "trigger_instance_id = ?, result_code = ? WHERE id = ? AND state = 'firing'",
                (now, trigger_instance_id, code, delivery_id),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'firing'")
            c.executemany(
                "INSERT INTO runs (run_id, delivery_id, fired_at) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id) DO NOTHING",
                [(run_id, delivery_id, now) for run_id in run_ids],
            )

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
                "UPDATE deliveries SET state = 'retry_wait', attempts = attempts + ?, "
                "next_attempt_at = ?, last_error = ?, first_error_at = COALESCE(first_error_at, ?),"
                " last_error_at = ? WHERE id = ? AND state = 'firing'",
                (int(count_attempt), next_attempt_at, _dumps(dict(error)), now, now, delivery_id),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'firing'")

    def release(self, delivery_id: int) -> None:
        """firing -> pending with no attempt counted (the circuit is open: nothing was sent)."""
        with self._tx() as c:
            changed = c.execute(
                "UPDATE deliveries SET state = 'pending', first_attempt_at = "
                "CASE WHEN attempts = 0 THEN NULL ELSE first_attempt_at END "
                "WHERE id = ? AND state = 'firing'",
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
                "UPDATE deliveries SET attempts = attempts + (state = 'firing'), state = 'dead', "
                "last_error = COALESCE(?, last_error), last_error_at = ? "
                "WHERE id = ? AND state IN ('pending', 'retry_wait', 'firing')",
                (None if error is None else _dumps(dict(error)), now, delivery_id),
            ).rowcount
            if changed != 1:
                raise self._state_error(c, delivery_id, "'pending', 'retry_wait' or 'firing'")
            cur = c.execute(
                _INSERT_DEAD_LETTER_FROM_DELIVERY,
                {
                    "stage": "fire",
                    "reason": str(reason),
                    "code": code,
                    "message": message,
                    "run_id": None,
                    "details": None if error is None else _dumps(dict(error)),
                    "now": now,
                    "delivery_id": delivery_id,
                },
            )
            return _lastrowid(cur)

    # -- poller ----------------------------------------------------------------------

    def live_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs not yet at an end, oldest fire first."""
        with self._read() as c:
            rows = c.execute(
                _SELECT_RUNS + " WHERE u.finished_at IS NULL ORDER BY u.fired_at, u.run_id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [_run_from_row(row) for row in rows]

    def run(self, run_id: str) -> RunRecord | None:
        """One run by id, or None."""
        with self._read() as c:
            row = c.execute(_SELECT_RUNS + " WHERE u.run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_from_row(row)

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
    ) -> int | None:
        """Record a run's terminal status. failed / canceled / timed_out also write a
        ``run`` dead letter (returned id). A run already finished is left as it was
        (returns None), so a second report never doubles a dead letter.
        """
        if status not in TERMINAL_RUN_STATUSES:
            raise StoreError(
                f"run {run_id}: {status!r} is not a terminal status; "
                f"use one of {sorted(TERMINAL_RUN_STATUSES)}"
            )
        with self._tx() as c:
            changed = c.execute(
                "UPDATE runs SET status = ?, finished_at = ?, last_checked_at = ?, error = ? "
                "WHERE run_id = ? AND finished_at IS NULL",
                (status, now, now, error, run_id),
            ).rowcount
            if changed != 1:
                if c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                    raise StoreError(f"no run with id {run_id!r}")
                return None
            reason = _RUN_DEAD_REASONS.get(status)
            if reason is None:
                return None
            delivery_id = c.execute(
                "SELECT delivery_id FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            details = {"runId": run_id, "status": status, "error": error, "logs": _list(logs)}
            cur = c.execute(
                _INSERT_DEAD_LETTER_FROM_DELIVERY,
                {
                    "stage": "run",
                    "reason": str(reason),
                    "code": status,
                    "message": error or f"run {run_id} ended {status}",
                    "run_id": run_id,
                    "details": _dumps(details),
                    "now": now,
                    "delivery_id": delivery_id,
                },
            )
            return _lastrowid(cur)

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
        params = {
            "reason": None if reason is None else str(reason),
            "route": route,
            "stage": stage,
            "since": since,
            "redriven": None if redriven is None else int(redriven),
            "limit": limit,
        }
        with self._read() as c:
            rows = c.execute(_SELECT_DEAD_LETTERS, params).fetchall()
        return [_dead_letter_from_row(row) for row in rows]

    def dead_letter(self, dead_letter_id: int) -> DeadLetterRow | None:
        """One dead letter by id, or None."""
        with self._read() as c:
            row = c.execute(
                f"SELECT {_DEAD_LETTER_COLUMNS} {_DEAD_LETTER_FROM} WHERE x.id = ?",
                (dead_letter_id,),
            ).fetchone()
        return None if row is None else _dead_letter_from_row(row)

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
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                    "first_attempt_at = NULL, fired_at = NULL, trigger_instance_id = NULL, "
                    "result_code = NULL, last_error = NULL, first_error_at = NULL, "
                    "last_error_at = NULL WHERE id = ? AND state IN ('fired', 'dead')",
                    (now, delivery_id),
                )
                return delivery_id
            c.execute(
                "INSERT INTO deliveries (route, trigger_event_id, idempotency_key, payload, "
                "ordering_key, event_id, record_id, created_at, next_attempt_at) "
                "SELECT route, trigger_event_id, ?, payload, ordering_key, event_id, record_id, "
                "?, ? FROM deliveries WHERE id = ? "
                "ON CONFLICT (route, idempotency_key) DO NOTHING",
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
                f"SELECT {_DEAD_LETTER_COLUMNS} {_DEAD_LETTER_FROM} "
                "WHERE x.published_at IS NULL ORDER BY x.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [_dead_letter_from_row(row) for row in rows]

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
            with self._lock:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        while (chunk := self._prune_chunk(self._conn, before)) != PruneResult():
                            total = _add(total, chunk)
                    finally:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    raise StoreError(f"outbox {str(self.path)!r}: {exc}") from exc
            return total
        while True:
            with self._tx() as c:
                chunk = self._prune_chunk(c, before)
            if chunk == PruneResult():
                return total
            total = _add(total, chunk)

    @staticmethod
    def _prune_chunk(c: sqlite3.Connection, before: float) -> PruneResult:
        def delete(sql: str, keys: Sequence[Any]) -> int:
            return c.executemany(sql, [(k,) for k in keys]).rowcount if keys else 0

        params = {"before": before, "limit": _PRUNE_CHUNK}
        victims = c.execute(_SELECT_PRUNABLE_DELIVERIES, params).fetchall()
        ids = [row[0] for row in victims]
        ingest = c.execute(_SELECT_PRUNABLE_DEAD_LETTERS, params).fetchall()
        records = {row[1] for row in [*victims, *ingest] if row[1] is not None}
        dead_letters = delete("DELETE FROM dead_letters WHERE delivery_id = ?", ids)
        dead_letters += delete("DELETE FROM dead_letters WHERE id = ?", [r[0] for r in ingest])
        runs = delete("DELETE FROM runs WHERE delivery_id = ?", ids)
        deliveries = delete("DELETE FROM deliveries WHERE id = ?", ids)
        gone = delete(_DELETE_ORPHAN_RECORD, sorted(records))
        return PruneResult(deliveries, runs, dead_letters, gone)

    # -- inspection ------------------------------------------------------------------

    def dead_letters_by_reason(self, *, unredriven_only: bool = False) -> dict[str, int]:
        """Dead letter counts per reason (only those not yet redriven, if asked)."""
        with self._read() as c:
            rows = c.execute(
                "SELECT reason, count(*) FROM dead_letters "
                "WHERE (? = 0 OR redriven_at IS NULL) GROUP BY reason ORDER BY reason",
                (int(unredriven_only),),
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def stats(self, now: float) -> OutboxStats:
        """Counts by delivery state, runs, dead letters, and the oldest waiting row's age."""
        with self._tx("DEFERRED") as c:  # one snapshot for all counts
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
                row[0]: row[1]
                for row in c.execute("SELECT status, count(*) FROM runs GROUP BY status")
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


def _add(a: PruneResult, b: PruneResult) -> PruneResult:
    return PruneResult(
        deliveries=a.deliveries + b.deliveries,
        runs=a.runs + b.runs,
        dead_letters=a.dead_letters + b.dead_letters,
        records=a.records + b.records,
    )


def _lastrowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:  # pragma: no cover - an INSERT always sets it
        raise StoreError("insert did not return a row id")
    return cur.lastrowid


def _list(logs: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if logs is None else [dict(entry) for entry in logs]
