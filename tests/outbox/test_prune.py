"""Retention on real SQLite files: ``Outbox.prune`` deletes old finished work and never
anything live, un-redriven, or young enough to be replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.store import Outbox, PruneResult

NOW = 1_700_000_000.0
BEFORE = NOW + 100  # the cut-off: work finished before it goes


def record(offset: int) -> SourceRecord:
    return SourceRecord(
        source="kafka", stream="orders", position=f"0:{offset}", key=None, value=b"{}"
    )


def delivery(key: str) -> NewDelivery:
    return NewDelivery(
        route="r",
        target="brew",
        action="tri",
        idempotency_key=key,
        payload={"k": key},
        event_id=key,
    )


def routed(offset: int, key: str) -> Routed:
    return Routed(record=record(offset), deliveries=(delivery(key),))


def counts(path: Path) -> dict[str, int]:
    db = sqlite_utils.Database(path)
    return {t: db[t].count for t in ("records", "deliveries", "runs", "dead_letters")}


def fire(outbox: Outbox, offset: int, key: str, *, run: str | None = None) -> int:
    """Store one delivery and take it to ``fired`` (nothing else is due meanwhile)."""
    outbox.store_batch([routed(offset, key)], NOW)
    [d] = outbox.claim_due(NOW, 1, ordered=False)
    outbox.mark_fired(
        d.id, instance_id=None, run_ids=[run] if run else [], code="TRIGGERED", now=NOW
    )
    return d.id


def claimed(outbox: Outbox, offset: int, key: str) -> int:
    outbox.store_batch([routed(offset, key)], NOW)
    [d] = outbox.claim_due(NOW, 1, ordered=False)
    return d.id


def ingest_dead_letter(outbox: Outbox, offset: int) -> int:
    bad = NewDeadLetter(stage="ingest", reason=Reason.INVALID_JSON, message="bad")
    outbox.store_batch([Routed(record=record(offset), dead_letters=(bad,))], NOW)
    [dl] = outbox.dead_letters(stage="ingest", limit=1)
    return dl.id


def build(outbox: Outbox) -> None:
    """One row of every kind, finished before BEFORE or not."""
    fire(outbox, 1, "fired_old", run="run_done")  # pruned, with its run and record
    fire(outbox, 2, "run_live", run="run_live")  # kept: its run is still live
    fire(outbox, 3, "run_late", run="run_late")  # kept: its run ended after BEFORE
    fire(outbox, 4, "run_failed", run="run_failed")  # kept: its dead letter is open
    fire(outbox, 5, "no_runs")  # pruned
    outbox.finish_run("run_done", status="completed", now=NOW + 1)
    outbox.finish_run("run_late", status="completed", now=BEFORE + 1)
    outbox.finish_run("run_failed", status="failed", now=NOW + 1, error="boom")
    dead: dict[str, int] = {}
    for offset, key in ((6, "dead_open"), (7, "dead_redriven")):
        d = claimed(outbox, offset, key)
        dead[key] = outbox.mark_dead(
            d, reason=Reason.FIRE_REJECTED, code="X", message="no", error=None, now=NOW
        )
    retry = claimed(outbox, 12, "retry")  # kept: retry_wait
    outbox.mark_retry(retry, next_attempt_at=NOW + 1000, error={"e": 1}, now=NOW)
    claimed(outbox, 9, "firing")  # kept: firing
    # Redriven under a new key: the dead row goes, its record stays for the new row.
    redriven = outbox.dead_letter(dead["dead_redriven"])
    assert redriven is not None
    assert redriven.delivery_id is not None
    outbox.requeue_delivery(redriven.delivery_id, new_key="again", now=NOW)
    outbox.mark_redriven(redriven.id, NOW + 2)
    outbox.store_batch([routed(8, "pending")], NOW)  # kept: pending
    outbox.mark_redriven(ingest_dead_letter(outbox, 10), NOW + 3)  # pruned, with its record
    ingest_dead_letter(outbox, 11)  # kept: not redriven


EXPECTED = PruneResult(deliveries=3, runs=1, dead_letters=2, records=3)


def test_prune_deletes_old_finished_work_and_keeps_the_rest(outbox: Outbox, path: Path) -> None:
    build(outbox)
    before = counts(path)
    assert outbox.prune(BEFORE) == EXPECTED
    after = counts(path)
    assert after == {
        "records": before["records"] - 3,
        "deliveries": before["deliveries"] - 3,
        "runs": before["runs"] - 1,
        "dead_letters": before["dead_letters"] - 2,
    }
    left = {
        row["idempotency_key"]: row["state"]
        for row in sqlite_utils.Database(path)["deliveries"].rows
    }
    assert left == {
        "run_live": "fired",
        "run_late": "fired",
        "run_failed": "fired",
        "dead_open": "dead",
        "retry": "retry_wait",
        "firing": "firing",
        "again": "pending",
        "pending": "pending",
    }
    assert {r.run_id for r in outbox.live_runs()} == {"run_live"}
    assert outbox.stats(BEFORE).dead_letters_unredriven == 3  # dead_open, run_failed, ingest
    assert outbox.prune(BEFORE) == PruneResult()  # nothing more to do


def test_a_kept_delivery_still_refuses_its_replay(outbox: Outbox) -> None:
    build(outbox)
    outbox.prune(BEFORE)
    replay = outbox.store_batch([routed(2, "run_live"), routed(3, "run_late")], BEFORE)
    assert (replay.inserted, replay.duplicates) == (0, 2)
    # A pruned one is forgotten: why retention must outlast the topic's.
    assert outbox.store_batch([routed(1, "fired_old")], BEFORE).inserted == 1


def test_nothing_younger_than_the_cut_off_goes(outbox: Outbox, path: Path) -> None:
    build(outbox)
    before = counts(path)
    assert outbox.prune(NOW) == PruneResult()
    assert counts(path) == before


def test_dry_run_counts_exactly_and_changes_nothing(outbox: Outbox, path: Path) -> None:
    build(outbox)
    before = counts(path)
    assert outbox.prune(BEFORE, dry_run=True) == EXPECTED
    assert counts(path) == before
    assert outbox.prune(BEFORE) == EXPECTED


def test_prune_works_in_chunks(outbox: Outbox, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from brew_bridge.store import sql

    monkeypatch.setattr(sql, "PRUNE_CHUNK", 2)
    for i in range(5):
        fire(outbox, i, f"k{i}")
    assert outbox.prune(BEFORE) == PruneResult(deliveries=5, records=5)
    assert counts(path) == {"records": 0, "deliveries": 0, "runs": 0, "dead_letters": 0}
