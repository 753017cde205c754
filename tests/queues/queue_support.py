"""What the queue-source tests share, whatever the broker: the example config with its
topics turned into queue sources, and a publisher per broker behind one protocol.

Each broker's test module supplies a :class:`Broker` (publish, and the source settings
for a stream); the checks (exactly once, poison, crash, two bridges, backpressure) are
written once here and run against each real broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from kafka_helpers import wait_for

from brew_bridge.testing.kafka import ExampleEvent, kafka_routes_only

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
CRASH_WORKER = Path(__file__).with_name("queue_crash_worker.py")
POISON = (b"not json", b"[1, 2]", b'{"type": "nobody.listens"}')


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


class Broker(Protocol):
    """One real broker, as the tests drive it."""

    kind: str  # the sources: kind (rabbit, nats, redis)

    def settings(self, stream: str) -> dict[str, Any]:
        """The ``sources.<kind>.<name>`` entry reading ``stream``."""
        ...

    def member_settings(self, member: str) -> dict[str, Any]:
        """What differs between two bridges of one group (e.g. a consumer name)."""
        ...

    async def publish(
        self, stream: str, values: Iterable[bytes], headers: Iterable[Mapping[str, str]] = ()
    ) -> None:
        """Publish ``values`` (in order) to ``stream``; ``headers`` pairs up with them."""
        ...

    async def backlog(self, stream: str, group: str) -> int:
        """Messages of ``stream`` the bridge's group has not acknowledged yet."""
        ...


def queue_config(
    path: Path,
    broker: Broker,
    uid: str,
    *,
    outbox: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> tuple[Path, dict[str, str]]:
    """The example config, each topic read from a ``broker`` source instead (stream
    ``<topic>-<uid>``); returns the file and the map topic -> stream."""
    doc = kafka_routes_only(yaml.safe_load(EXAMPLE.read_text()))
    streams: dict[str, str] = {}
    for route in doc["routes"]:
        topics = route.pop("topics")
        route["sources"] = [f"{broker.kind}.{t}" for t in topics]
        for topic in topics:
            streams.setdefault(topic, f"{topic}-{uid}")
    doc["sources"] = {
        broker.kind: {
            topic: {**broker.settings(stream), **(source or {})}
            for topic, stream in streams.items()
        }
    }
    doc["kafka"] = {"dlq_topic": None, "result_topic": None}
    doc["outbox"] = {
        **doc.get("outbox", {}),
        "path": str(path.parent / "outbox.db"),
        "synchronous": "NORMAL",
        **(outbox or {}),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, streams


async def publish_events(
    broker: Broker, streams: Mapping[str, str], events: Iterable[ExampleEvent]
) -> int:
    """Publish example events to the stream of their topic; how many."""
    by_stream: dict[str, list[ExampleEvent]] = {}
    for event in events:
        by_stream.setdefault(streams[event.topic], []).append(event)
    for stream, batch in by_stream.items():
        await broker.publish(
            stream,
            [e.value for e in batch],
            [{k: v.decode() for k, v in e.headers} for e in batch],
        )
    return sum(len(b) for b in by_stream.values())


def run_crash_worker(
    config: Path, point: str, after: int, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The crash worker (drains the sources, dying at ``point`` of batch ``after``)."""
    return subprocess.run(
        [sys.executable, str(CRASH_WORKER), str(config), point, str(after)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServingWorker:
    """The crash worker consuming until SIGTERM; its output goes to files beside the
    config (a pipe nobody reads would fill and stall it)."""

    def __init__(self, config: Path) -> None:
        self.out = config.with_suffix(".out")
        self.err = config.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(CRASH_WORKER), str(config), "serve", "0"],
                stdout=out,
                stderr=err,
                text=True,
            )

    async def consuming(self, seconds: float = 30) -> None:
        """Until every source of the worker is connected (it prints "consuming")."""
        await wait_for(
            lambda: "consuming" in self.out.read_text().split("\n") or self.ended(),
            seconds,
            "the worker to consume",
        )
        assert not self.ended(), self.err.read_text()[-3000:]

    def ended(self) -> bool:
        return self.process.poll() is not None

    async def stop(self, seconds: float = 30) -> int:
        """SIGTERM, then its exit code."""
        if not self.ended():
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, seconds)
