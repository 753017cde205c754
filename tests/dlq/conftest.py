"""Fixtures: real outbox files holding dead letters of every stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from dlq_support import (
    Filled,
    fire_dead_letter,
    ingest_dead_letter,
    run_dead_letters,
    store_delivery,
)

from brew_bridge.events import Reason
from brew_bridge.store import Outbox


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def filled(outbox_path: Path) -> Filled:
    """An outbox with one fire dead letter, two run dead letters of one fire, an ingest
    dead letter with a binary value, and one delivery still pending."""
    outbox = Outbox.open(outbox_path)
    try:
        fire_delivery, fire_dl = fire_dead_letter(outbox, 1, "welcome:e1")
        run_delivery, run_dls = run_dead_letters(outbox, 2, "welcome:e2", ("run_a", "run_b"))
        binary_dl = ingest_dead_letter(outbox, 3, b"\xff\xfe not json", Reason.INVALID_JSON)
        store_delivery(outbox, 4, "welcome:e4")
    finally:
        outbox.close()
    return Filled(outbox_path, fire_delivery, fire_dl, run_delivery, run_dls, binary_dl)
