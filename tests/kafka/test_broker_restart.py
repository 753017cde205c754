"""A broker restart: Tansu on S3 storage comes back with its topics, records and the
group's committed offsets, and a running bridge rides through it by itself.

The broker of this module keeps what it holds in the handle's S3 server
(``running_broker(storage="s3")``); the other Kafka tests use memory storage, where a
restart starts empty.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_helpers import committed_to_end, db, stored_records

from brew_bridge.config import BridgeConfig
from brew_bridge.testing.kafka import BrokerHandle, _S3Server, running_broker
from brew_bridge.testing.simulator import running_simulator

# The bridge as a child process, as the end-to-end tests run it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_support import BridgeProcess

KEY = "brew_broker_restart_key"
_LOST = "Unable connect to node"  # aiokafka's log line when the broker is unreachable
Build = Callable[..., tuple[BridgeConfig, dict[str, str]]]
Coords = tuple[int, int]  # partition, offset


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerHandle]:
    """This module's broker (it overrides the session's): Tansu on S3 storage."""
    with running_broker(storage="s3") as handle:
        yield handle


async def _consume(broker: BrokerHandle, group: str, topic: str, count: int) -> list[Coords]:
    """Read ``count`` records from ``group``'s committed offsets on, and commit them.

    Partitions are assigned, not subscribed: a join would only add Tansu's rebalance
    delays, and what is tested is where the group's commits stand."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    read: list[Coords] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(broker.end_offsets(topic))]
        consumer.assign(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        deadline = time.monotonic() + 30
        while len(read) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=count - len(read))
            for tp, records in batch.items():
                read.extend((tp.partition, r.offset) for r in records)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return read


def test_restart_keeps_topics_records_and_committed_offsets(broker: BrokerHandle, uid: str) -> None:
    topic, group = f"durable-{uid}", f"durable-{uid}"
    broker.create_topic(topic, partitions=3)
    broker.produce(
        topic, [f"v{i}".encode() for i in range(90)], keys=[b"%d" % i for i in range(90)]
    )
    first = asyncio.run(_consume(broker, group, topic, 40))
    assert len(first) == 40
    committed = broker.committed(group, topic)
    ends = broker.end_offsets(topic)

    broker.restart()

    assert broker.end_offsets(topic) == ends  # the topic and every record are back
    assert broker.committed(group, topic) == committed  # and the group's commits
    rest = asyncio.run(_consume(broker, group, topic, 50))
    assert len(rest) == 50
    assert not set(first) & set(rest)  # read on from the commits: nothing twice
    assert len(set(first) | set(rest)) == 90  # and nothing missed
    assert committed_to_end(broker, group, topic)
    assert len(broker.read(topic, 90)) == 90


def test_the_s3_server_serves_what_tansu_relies_on() -> None:
    """Compare-and-swap puts (Tansu's watermarks and group state), ranges, and
    ListObjectsV2 pages, on the handle's own S3 server."""
    server = _S3Server()
    try:
        with httpx.Client(base_url=f"{server.url}/tansu") as s3:
            assert s3.get("/a").status_code == 404  # no bucket yet
            assert s3.put("").status_code == 200
            created = s3.put("/k/1", content=b"one", headers={"If-None-Match": "*"})
            assert created.status_code == 200
            etag = created.headers["ETag"]
            assert s3.put("/k/1", content=b"x", headers={"If-None-Match": "*"}).status_code == 412
            assert s3.put("/k/1", content=b"x", headers={"If-Match": '"stale"'}).status_code == 412
            assert s3.put("/k/0", content=b"x", headers={"If-Match": etag}).status_code == 404
            swapped = s3.put("/k/1", content=b"two", headers={"If-Match": etag})
            assert swapped.status_code == 200
            got = s3.get("/k/1", headers={"Range": "bytes=1-"})
            assert (got.status_code, got.content) == (206, b"wo")
            assert s3.get("/k/1", headers={"If-None-Match": etag}).status_code == 200
            assert (
                s3.get("/k/1", headers={"If-None-Match": swapped.headers["ETag"]}).status_code
                == 304
            )
            for name in ("k/2", "k/3/x", "k/3/y", "k/4", "z"):
                s3.put(f"/{name}", content=b".")
            keys: list[str] = []
            params = {"list-type": "2", "prefix": "k/", "delimiter": "/", "max-keys": "2"}
            while True:
                page = ElementTree.fromstring(s3.get("", params=params).content)  # noqa: S314
                keys += [el.text or "" for el in page.iter() if el.tag.endswith("}Key")]
                keys += [
                    el.text or ""
                    for prefix in page.iter()
                    if prefix.tag.endswith("}CommonPrefixes")
                    for el in prefix
                ]
                token = next((el.text for el in page.iter() if el.tag.endswith("Token")), None)
                if token is None:
                    break
                params["continuation-token"] = token
            assert sorted(keys) == ["k/1", "k/2", "k/3/", "k/4"]  # each once, over pages
            assert s3.delete("/k/1").status_code == 204
            assert s3.head("/k/1").status_code == 404
    finally:
        server.close()


TRIGGER = "tri_restart"
SCHEMA = {"type": "object", "fields": [{"key": "email", "type": "string", "required": True}]}


def _bridge_doc(base_url: str) -> dict[str, Any]:
    """One route firing at the simulator at 40 fires/s, consumption pausing at 20 rows
    waiting: the events are consumed over seconds, so the restart lands mid-stream."""
    budget = {"limit": 200, "window_seconds": 5}
    return {
        "brew": {
            "base_url": base_url,
            "timeout_seconds": 5.0,
            "rate_limits": {"fire": budget, "run_read": budget, "trigger_read": budget},
        },
        "outbox": {"high_water": 20, "low_water": 10},
        "poller": {"interval_seconds": 0.5},
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "INFO", "format": "json"},
        "triggers": {TRIGGER: {"payload_schema": SCHEMA}},
        "routes": [
            {
                "name": "restart",
                "topics": ["events"],
                "trigger": TRIGGER,
                "id_path": "event.id",
                "idempotency_key": "{route}:{event.id}",
                "payload": {"email": "event.email"},
            }
        ],
    }


def _seed() -> dict[str, Any]:
    lifted = {"limit": 1_000_000, "windowSeconds": 5}
    return {
        "limits": {"automation.runs.write": lifted, "automation.runs.read": lifted},
        "triggers": {
            TRIGGER: {
                "title": TRIGGER,
                "payloadSchema": SCHEMA,
                "automations": [{"automationId": "auto_restart", "durationMs": 300}],
            }
        },
    }  # no keys: section: any brew_ key is accepted


def _events(start: int, count: int) -> list[bytes]:
    return [
        json.dumps({"id": f"e{i}", "email": f"u{i}@example.com"}).encode()
        for i in range(start, start + count)
    ]


def _wait_until(
    check: Callable[[], bool], seconds: float, what: str, bridge: BridgeProcess
) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if bridge.proc.poll() is not None:
            raise AssertionError(f"the bridge exited while waiting for {what}:\n{bridge.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_bridge_rides_through_a_broker_restart_firing_each_event_once(
    broker: BrokerHandle, bridge_config: Build, tmp_path: Path
) -> None:
    before, after = 200, 100
    total = before + after
    with running_simulator(_seed()) as sim:
        config, topics = bridge_config(
            base=_bridge_doc(sim.base_url), kafka={"max_batch_records": 10}
        )
        topic, outbox = topics["events"], config.outbox.path
        broker.produce(topic, _events(0, before))
        bridge = BridgeProcess(
            ["run", "--config", str(tmp_path / "bridge.yaml")], {"BREW_API_KEY": KEY}
        )
        try:
            bridge.wait_for_log("kafka_subscribed")

            def stored() -> int:
                return db(outbox)["records"].count if Path(outbox).exists() else 0

            _wait_until(lambda: stored() >= 40, 60, "the bridge to store 40 events", bridge)
            at_restart = stored()
            seen = len(bridge.raw_stderr)
            broker.stop()
            # Down until the bridge's consumer has found it gone (aiokafka says so).
            _wait_until(
                lambda: any(_LOST in line for line in bridge.raw_stderr[seen:]),
                30,
                "the bridge to notice the broker is down",
                bridge,
            )
            broker.start()
            broker.produce(topic, _events(before, after))

            def done() -> bool:
                if stored() < total:
                    return False
                states = {r["state"] for r in db(outbox)["deliveries"].rows}
                live = db(outbox)["runs"].count_where("finished_at IS NULL")
                return states <= {"fired", "dead"} and live == 0

            _wait_until(done, 180, "every event stored, fired and its run ended", bridge)
            _wait_until(
                lambda: committed_to_end(broker, config.kafka.group_id, topic),
                60,
                "the group's commits to reach the end of every partition",
                bridge,
            )
        finally:
            code = bridge.stop()
        assert code == 0, bridge.stderr[-3000:]
        fires: dict[str, list[int]] = {}
        for entry in sim.requests():
            if entry["method"] == "POST" and entry["path"].endswith("/fire"):
                fires.setdefault(entry["idempotencyKey"], []).append(entry["status"])

    # The restart came mid-stream: some events were stored before it, not all.
    assert 0 < at_restart < before
    # Every event stored once (records read again after the restart are known ones),
    # each fired, none dead.
    records = stored_records(outbox)
    assert len(records) == total
    assert len({(r.stream, r.position) for r in records}) == total
    keys = {f"restart:e{i}" for i in range(total)}
    deliveries = Counter(r["idempotency_key"] for r in db(outbox)["deliveries"].rows)
    assert set(deliveries) == keys
    assert set(deliveries.values()) == {1}
    assert {r["state"] for r in db(outbox)["deliveries"].rows} == {"fired"}
    assert db(outbox)["dead_letters"].count == 0
    # Brew accepted exactly one fire per key.
    assert set(fires) == keys
    twice = {k: v for k, v in fires.items() if v.count(200) != 1}
    assert not twice, twice
