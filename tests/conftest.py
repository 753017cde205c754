"""Fixtures every test folder may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from brew_bridge.testing.faults import CannotMount, small_disk


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """A command run in-process (``check --online``) configures structlog for its
    process; the next test must not inherit its level or its captured stderr."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for real disk faults (fill it, remount it); skips where it cannot
    be mounted (needs root), saying why."""
    try:
        with small_disk(tmp_path / "disk") as where:
            yield where
    except CannotMount as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
