"""Opening the outbox file: autocommit mode, WAL, ``synchronous``, foreign keys, waits."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from brew_bridge.errors import StoreError

__all__ = ["connect"]

_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "EXTRA"})


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A configured connection to the outbox file (created if needed); errors name the fix."""
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
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        # SQLite would only say "unable to open database file".
        raise StoreError(
            f"outbox.path {str(path)!r}: the filesystem of {str(path.parent)!r} is read-only; "
            "mount the volume read-write, or point outbox.path at a writable directory"
        )
    try:
        # Autocommit mode (isolation_level=None): transactions are opened explicitly, so
        # their boundaries are exactly the ones the outbox names.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"outbox.path {str(path)!r}: cannot open: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        try:
            # Set first, so that even switching the journal mode waits instead of failing.
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {str(path)!r}: cannot configure: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(
                f"outbox {str(path)!r}: SQLite refused WAL mode (got {mode!r}); put "
                "outbox.path on a local filesystem (WAL does not work on network filesystems)"
            )
    except BaseException:
        conn.close()
        raise
    return conn
