"""Accepted fires recorded together (core/marks.py) on a real outbox file: fires that
finish at once share one transaction, a bad mark fails alone, a stop writes what was
handed over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from brew_bridge.core.marks import FiredMarks
from brew_bridge.errors import StoreError
from brew_bridge.events import NewDelivery, Routed, SourceRecord
from brew_bridge.store import FiredMark, Outbox

NOW = 1_700_000_000.0


def _stored(box: Outbox, n: int) -> None:
    box.store_batch(
        [
            Routed(
                record=SourceRecord("kafka", "t", f"0:{i}", None, b"{}"),
                deliveries=(NewDelivery("r", "brew", "tri", f"k{i}", {"email": "a@b.c"}),),
            )
            for i in range(n)
        ],
        NOW,
    )


def _commits(statements: list[str]) -> int:
    return sum(s.strip().upper() == "COMMIT" for s in statements)


async def test_fires_finishing_together_share_one_transaction(tmp_path: Path) -> None:
    statements: list[str] = []
    with Outbox.open(tmp_path / "o.db", trace=statements.append) as box:
        _stored(box, 30)
        rows = box.claim_due(NOW, 30)
        marks = FiredMarks(box)
        statements.clear()
        await asyncio.gather(
            *(marks.record(FiredMark(r.id, None, (f"run_{r.id}",), "OK", NOW)) for r in rows)
        )
        assert _commits(statements) <= 2  # one per fire before
        assert box.backlog() == 0
        assert len(box.live_runs()) == 30


async def test_a_mark_for_a_row_not_firing_fails_alone(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "o.db") as box:
        _stored(box, 3)
        rows = box.claim_due(NOW, 2)  # the third stays pending
        marks = FiredMarks(box)
        results = await asyncio.gather(
            *(marks.record(FiredMark(i, None, (), "OK", NOW)) for i in (rows[0].id, 3, rows[1].id)),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        assert isinstance(results[1], StoreError)
        assert "is 'pending', expected 'firing'" in str(results[1])
        assert box.backlog() == 1


async def test_a_store_failure_fails_every_mark_of_its_transaction(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    _stored(box, 2)
    rows = box.claim_due(NOW, 2)
    box.close()  # every statement now fails
    marks = FiredMarks(box)
    results = await asyncio.gather(
        *(marks.record(FiredMark(r.id, None, (), "OK", NOW)) for r in rows),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results), results


async def test_a_cancelled_fire_still_has_its_mark_written(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "o.db") as box:
        _stored(box, 1)
        [row] = box.claim_due(NOW, 1)
        marks = FiredMarks(box)
        fire = asyncio.create_task(marks.record(FiredMark(row.id, "ti", ("run",), "OK", NOW)))
        await asyncio.sleep(0)  # the mark is handed over
        fire.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fire
        await marks.flush()
        assert [r.run_id for r in box.live_runs()] == ["run"]
