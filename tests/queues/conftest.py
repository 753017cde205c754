"""The real brokers this machine runs: RabbitMQ :5672, NATS JetStream :4222, Redis :6379.

A test of a broker that is not there skips, saying which and where; under CI (``CI``
set) it fails instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

# The outbox readers and the simulator helpers are shared with the Kafka and delivery tests.
_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS / "kafka"), str(_TESTS / "delivery")]


def require_broker(name: str, host: str, port: int) -> None:
    """Skip (fail under CI) when nothing listens on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc}): start it to run these tests"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the {name} tests: {message}")
    pytest.skip(message)


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]
