"""The fixture copies under fixtures/brew/ are still Brew's bodies, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_support import FIXTURES

SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "brew-fixtures"


def test_copies_match_the_shared_reference() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared reference is not beside this clone ({SHARED})")
    copies = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*.json"))
    assert len(copies) > 40
    for relative in copies:
        original = SHARED / relative
        assert original.is_file(), f"{relative} is not in the shared reference any more"
        assert (FIXTURES / relative).read_bytes() == original.read_bytes(), f"{relative} drifted"
