"""Fixtures: a fresh outbox file on disk, and the outbox opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from brew_bridge.store import Outbox


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    box = Outbox.open(path)
    yield box
    box.close()
