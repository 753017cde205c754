"""Fixtures of the queue-source tests (the brokers: queue_support.require_broker)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

# The outbox readers and the simulator helpers are shared with the Kafka and delivery tests.
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS / "kafka"), str(_TESTS / "delivery")]


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]
