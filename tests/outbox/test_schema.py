"""The target-neutral schema (v3), reached from a real v2 file written by the code before it.

``fixtures/outbox-v2.db`` was written by brew-bridge at commit 686834a (schema v2, numbered
by ``user_version`` only): two Kafka records fired (one run completed, one failed and
dead-lettered with its logs), one left pending, one ingest dead letter.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from brew_bridge.events import NewDelivery, Routed, SourceRecord
from brew_bridge.store import SCHEMA_VERSION, Outbox
from brew_bridge.store.schema import MIGRATION_SET

V2_FILE = Path(__file__).parent / "fixtures" / "outbox-v2.db"
NOW = 1_780_000_100.0


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    path = tmp_path / "outbox.db"
    shutil.copyfile(V2_FILE, path)
    return path


def test_the_fixture_is_a_v2_file() -> None:
    conn = sqlite3.connect(f"file:{V2_FILE}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        assert {"topic", "partition", "offset"} <= columns
    finally:
        conn.close()


def test_a_v2_file_migrates_and_keeps_every_row(v2: Path) -> None:
    with Outbox.open(v2) as box:
        assert box.schema_version == SCHEMA_VERSION == 6
        stats = box.stats(NOW)
        assert (stats.deliveries["fired"], stats.deliveries["pending"]) == (2, 1)
        assert stats.runs_by_status == {"completed": 1, "failed": 1}
        assert stats.dead_letters == 2
        [pending] = box.claim_due(NOW, 10)
        assert (pending.target, pending.action, pending.idempotency_key) == (
            "brew",
            "tri_welcome",
            "welcome:evt_13",
        )
        assert pending.record == SourceRecord(
            "kafka",
            "signups",
            "2:13",
            b"cus_1",
            b'{"id":"evt_13"}',
            (("x-trace", b"t1"),),
            1_780_000_000_013,
        )
        by_reason = {dl.reason: dl for dl in box.dead_letters()}
        assert by_reason["invalid_json"].record is not None
        assert by_reason["invalid_json"].record.position == "2:12"
        failed = by_reason["run_failed"]
        assert failed.run_id == "run_bad"
        assert failed.details is not None
        assert failed.details["logs"] == [{"node": "send", "level": "error"}]
    rows = {r["idempotency_key"]: r for r in Database(v2)["deliveries"].rows}
    assert rows["welcome:evt_10"]["instance_id"] == "tin_1"
    assert sqlite3.connect(v2).execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_migrated_file_still_refuses_what_it_stored_before(v2: Path) -> None:
    """Keys and record coordinates stored under v2 still stop their duplicates."""
    again = SourceRecord("kafka", "signups", "2:10", b"cus_1", b'{"id":"evt_10"}')
    delivery = NewDelivery(
        "welcome", "brew", "tri_welcome", "welcome:evt_10", {"email": "ada@example.com"}
    )
    with Outbox.open(v2) as box:
        result = box.store_batch([Routed(again, deliveries=(delivery,))], NOW)
    assert (result.records, result.inserted, result.duplicates) == (0, 0, 1)


def test_the_migrations_are_recorded_by_name_and_opening_again_changes_nothing(
    v2: Path,
) -> None:
    Outbox.open(v2).close()
    applied = [
        r["name"]
        for r in Database(v2)["_sqlite_migrations"].rows_where(
            "migration_set = ?", [MIGRATION_SET], order_by="id"
        )
    ]
    assert applied == [
        "001_initial",
        "002_ingest_indexes",
        "003_target_neutral",
        "004_firing_leases",
        "005_run_refs",
        "006_shared_runs",
    ]
    schema = Database(v2).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    with Outbox.open(v2) as box:
        assert box.schema_version == SCHEMA_VERSION
    assert Database(v2).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_a_new_file_has_the_target_neutral_tables(path: Path) -> None:
    Outbox.open(path).close()
    db = Database(path)
    assert {"source", "stream", "position"} <= set(db["records"].columns_dict)
    assert {"target", "action", "instance_id"} <= set(db["deliveries"].columns_dict)
    assert "topic" not in db["records"].columns_dict
