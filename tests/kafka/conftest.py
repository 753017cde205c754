"""Fixtures for the Kafka tests: one Tansu broker per session, unique topics and groups
per test, and the example config pointed at them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from brew_bridge.config import BridgeConfig, load_config
from brew_bridge.testing.kafka import BrokerHandle, kafka_routes_only, running_broker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerHandle]:
    with running_broker() as handle:
        yield handle


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


def write_config(
    path: Path,
    broker: BrokerHandle,
    uid: str,
    *,
    kafka: dict[str, Any] | None = None,
    outbox: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, str]]:
    """The example config with its topics renamed for this test; returns the file and
    the topic map (example name -> this test's name)."""
    doc = kafka_routes_only(base if base is not None else yaml.safe_load(EXAMPLE.read_text()))
    topics: dict[str, str] = {}
    for route in doc["routes"]:
        route["topics"] = [topics.setdefault(t, f"{t}-{uid}") for t in route["topics"]]
    doc["kafka"] = {
        **doc.get("kafka", {}),
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": f"bridge-{uid}",
        "dlq_topic": None,
        "result_topic": None,
        "poll_timeout_ms": 200,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        **(kafka or {}),
    }
    doc["outbox"] = {
        **doc.get("outbox", {}),
        "path": str(path.parent / "outbox.db"),
        "synchronous": "NORMAL",
        **(outbox or {}),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, topics


@pytest.fixture
def bridge_config(
    tmp_path: Path, broker: BrokerHandle, uid: str
) -> Callable[..., tuple[BridgeConfig, dict[str, str]]]:
    """Build a loaded config for this test; creates its topics (4 partitions)."""

    def build(**overrides: Any) -> tuple[BridgeConfig, dict[str, str]]:
        path, topics = write_config(tmp_path / "bridge.yaml", broker, uid, **overrides)
        for name in topics.values():
            broker.create_topic(name, partitions=4)
        return load_config(path, env={}), topics

    return build
