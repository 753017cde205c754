"""The outbox schema and its migrations, applied with sqlite-utils' ``Migrations``.

Each step is a named migration of the set ``brew-bridge-outbox``; sqlite-utils records
the applied ones in ``_sqlite_migrations``. :func:`migrate` runs every pending step in
ONE ``BEGIN IMMEDIATE`` transaction (sqlite-utils nests each step in a savepoint), so
two processes opening one file at once cannot both migrate: the second waits for the
write lock, then finds nothing pending. ``PRAGMA user_version`` mirrors the number of
steps applied, so ``brew-bridge outbox stats`` and older tools can still read it.

Files written before the migration set existed (schema v1 and v2, numbered by
``user_version`` alone) are adopted: their applied steps are recorded, then the rest run.

Append only; never edit a released step.

A file already at :data:`SCHEMA_VERSION` is left as it is without loading sqlite-utils
(~55 ms of every start otherwise, which the first fire after a restart waits for):
``user_version`` is set in the very transaction that applies the last step.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from brew_bridge.errors import StoreError

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

__all__ = ["SCHEMA_VERSION", "migrate", "schema_version"]

MIGRATION_SET: Final = "brew-bridge-outbox"
_MIGRATIONS_TABLE: Final = "_sqlite_migrations"  # where sqlite-utils records the steps

_V1: Final = (
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
)

_V2: Final = (
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
)

# Target-neutral: a record is (source, stream, position) whatever the source, and a
# delivery names its target and the action it fires there.
_V3: Final = (
    """
    CREATE TABLE records_v3 (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        stream TEXT NOT NULL,
        position TEXT NOT NULL,
        key BLOB,
        headers TEXT NOT NULL DEFAULT '[]',   -- JSON [[name, base64 value], ...]
        value BLOB NOT NULL,
        timestamp_ms INTEGER,
        created_at REAL NOT NULL,
        UNIQUE (source, stream, position)
    )
    """,
    # v2 rows are Kafka records: their position is partition:offset.
    """
    INSERT INTO records_v3 (id, source, stream, position, key, headers, value, timestamp_ms,
                            created_at)
    SELECT id, source, topic, "partition" || ':' || "offset", key, headers, value,
           timestamp_ms, created_at
    FROM records
    """,
    # Foreign keys are off while migrating: deliveries and dead letters keep pointing at
    # the same record ids, now in the new table.
    "DROP TABLE records",
    "ALTER TABLE records_v3 RENAME TO records",
    "ALTER TABLE deliveries RENAME COLUMN trigger_event_id TO action",
    "ALTER TABLE deliveries RENAME COLUMN trigger_instance_id TO instance_id",
    "ALTER TABLE deliveries ADD COLUMN target TEXT NOT NULL DEFAULT 'brew'",
)


# A firing row is leased to the dispatcher that claimed it: a row whose lease ran out
# (its outcome could not be recorded) is claimable again without a restart.
_V4: Final = ("ALTER TABLE deliveries ADD COLUMN lease_until REAL",)

# What a target needs besides the run id to read a run again (Pinkfish's automation id,
# Boring Marketing's brand id): FireAccepted.ref.
_V5: Final = ("ALTER TABLE runs ADD COLUMN ref TEXT",)

# One run may be followed for several deliveries: Boring Marketing answers a fire for a
# brand with a run in progress by naming that run (409 X-Running-Run-Id), which another
# delivery of ours may have started. A run row is (run, delivery).
_V6: Final = (
    """
    CREATE TABLE runs_v6 (
        run_id TEXT NOT NULL,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
        status TEXT NOT NULL DEFAULT 'pending',
        fired_at REAL NOT NULL,
        last_checked_at REAL,
        finished_at REAL,
        error TEXT,
        ref TEXT,
        PRIMARY KEY (run_id, delivery_id)
    )
    """,
    """
    INSERT INTO runs_v6 (run_id, delivery_id, status, fired_at, last_checked_at, finished_at,
                         error, ref)
    SELECT run_id, delivery_id, status, fired_at, last_checked_at, finished_at, error, ref
    FROM runs
    """,
    "DROP TABLE runs",
    "ALTER TABLE runs_v6 RENAME TO runs",
    "CREATE INDEX runs_live ON runs (fired_at, run_id) WHERE finished_at IS NULL",
    "CREATE INDEX runs_delivery ON runs (delivery_id)",
)


_STEPS: Final = (
    ("001_initial", _V1),
    ("002_ingest_indexes", _V2),
    ("003_target_neutral", _V3),
    ("004_firing_leases", _V4),
    ("005_run_refs", _V5),
    ("006_shared_runs", _V6),
)


def _step(statements: tuple[str, ...]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for statement in statements:
            db.execute(statement)

    return apply


@functools.cache
def _migration_set() -> Migrations:
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, statements in _STEPS:
        migrations(name=name)(_step(statements))
    if migrations.migrations_table != _MIGRATIONS_TABLE:
        raise RuntimeError(f"sqlite-utils records migrations in {migrations.migrations_table}")
    return migrations


SCHEMA_VERSION: Final = len(_STEPS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of schema steps applied to the file (``PRAGMA user_version``)."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` (``conn`` in autocommit mode, foreign
    keys on; they are off while migrating and checked before the commit)."""
    if schema_version(conn) > SCHEMA_VERSION:
        raise StoreError(
            f"outbox {where!r} has schema version {schema_version(conn)}, newer than this "
            f"brew-bridge knows ({SCHEMA_VERSION}); upgrade brew-bridge or use another file"
        )
    if schema_version(conn) == SCHEMA_VERSION and _records_steps(conn):
        conn.execute("PRAGMA foreign_keys = ON")
        return
    from sqlite_utils import Database

    _migrations = _migration_set()
    # Pending steps are found and applied inside the write lock: see the module docstring.
    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set first
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _adopt_unnamed_versions(db)
            if _migrations.pending(db):
                _migrations.apply(db)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(
                        f"outbox {where!r}: migration left {len(broken)} broken references; "
                        "nothing was changed"
                    )
                conn.execute(f"PRAGMA user_version = {len(_migrations.applied(db))}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"outbox {where!r}: cannot migrate the schema: {exc}") from exc
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _records_steps(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_MIGRATIONS_TABLE,)
    ).fetchone()
    return found is not None


def _adopt_unnamed_versions(db: Database) -> None:
    """Record as applied the steps a file numbered only by ``user_version`` already has."""
    _migrations = _migration_set()
    if db[_migrations.migrations_table].exists():
        return
    version = schema_version(db.conn)
    _migrations.ensure_migrations_table(db)
    at = str(datetime.now(UTC))
    db.table(_migrations.migrations_table).insert_all(
        {"migration_set": MIGRATION_SET, "name": step.name, "applied_at": at}
        for step in _migrations.pending(db)[:version]
    )
