"""End-to-end fixtures: one Tansu broker per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from brew_bridge.testing.kafka import BrokerHandle, running_broker

# The metric and simulator helpers are shared with the delivery tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerHandle]:
    with running_broker() as handle:
        yield handle
