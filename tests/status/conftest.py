"""Fixtures for the status page tests: one Tansu broker per session, a real headless
Chromium (Debian's ``chromium`` package, which ``.ci/run`` installs)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from brew_bridge.testing.kafka import BrokerHandle, running_broker

# The end-to-end setup (samples, seed, bridge subprocess) and the delivery helpers.
_TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "delivery"))
sys.path.insert(0, str(_TESTS / "e2e"))


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerHandle]:
    with running_broker() as handle:
        yield handle


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip(
        "no chromium on PATH: install Debian's chromium package (apt-get install chromium); "
        ".ci/run installs it, so CI never skips this"
    )
