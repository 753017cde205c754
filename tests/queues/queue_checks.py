"""The checks every queue source must pass, written once and run on each real broker:
exactly one fire per (event, route), poison to dead letters, kill -9 before and after the
outbox commit, two bridges sharing the work, backpressure at the high-water mark."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from delivery_support import fires_by_key
from kafka_helpers import expected_contents, outbox_contents, stored_records
from queue_support import (
    POISON,
    REPO,
    Broker,
    ServingWorker,
    publish_events,
    queue_config,
    run_crash_worker,
    wait_for,
)

from brew_bridge.cli import main as cli
from brew_bridge.config import BridgeConfig, compiled_routes, load_config
from brew_bridge.core.intake import IntakeObserver
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.registry import Sources, build_queue_sources
from brew_bridge.store import Outbox
from brew_bridge.testing.faults import fill
from brew_bridge.testing.kafka import example_events
from brew_bridge.testing.simulator import running_simulator
from brew_bridge.worker import Worker

SIM_SEED = REPO / "config" / "sim-seed.yaml"
MANIFEST = REPO / "config" / "samples" / "manifest.yaml"
ENV = {"BREW_API_KEY": "brew_queue_key"}
CRASH_AFTER = 3  # batches


def _manifest(streams: dict[str, str]) -> list[dict[str, Any]]:
    """The samples that arrive on the example's Brew topics."""
    samples = yaml.safe_load(MANIFEST.read_text())["samples"]
    return [s for s in samples if s.get("topic") in streams]


async def samples_fire_once_each(broker: Broker, tmp_path: Path, uid: str) -> None:
    """Every sample through the real worker to the simulator: one fire per (event,
    route) with the mapped payload, the broken ones dead letters, nothing left unacked."""
    with running_simulator(SIM_SEED) as sim:
        path, streams = queue_config(tmp_path / "bridge.yaml", broker, uid)
        doc = yaml.safe_load(path.read_text())
        doc["brew"] = {**doc["brew"], "base_url": sim.base_url, "timeout_seconds": 5.0}
        doc["poller"] = {**doc["poller"], "interval_seconds": 0.3}
        doc["server"] = {"host": "127.0.0.1", "port": 0}
        # The oversized sample is over this limit (the manifest's env for it).
        doc["kafka"]["max_record_bytes"] = 32768
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        manifest = _manifest(streams)
        for sample in manifest:
            value = (REPO / "config" / "samples" / sample["file"]).read_bytes()
            headers = {k: str(v) for k, v in sample.get("headers", {}).items()}
            await broker.publish(streams[sample["topic"]], [value], [headers])
        config = load_config(path, env=ENV)
        worker = Worker(config, env=ENV)
        summary = await asyncio.wait_for(worker.run(asyncio.Event(), once=True), 90)
        assert summary is not None

        fires = fires_by_key(sim)
        assert fires, "nothing was fired"
        assert all(len(v) == 1 for v in fires.values()), "a key was fired twice"
        expected = [(s, r) for s in manifest for r in s["expect"].get("deliver", [])]
        assert len(fires) == len(expected)
        triggers = {r.name: r.trigger for r in config.routes}
        for sample, route in expected:
            payload = sample["expect"].get("payload", {}).get(route)
            if payload is None:
                continue
            fire_path = f"/api/v1/automations/triggers/{triggers[route]}/fire"
            bodies = [
                e["body"]["payload"] for v in fires.values() for e in v if e["path"] == fire_path
            ]
            assert any(payload.items() <= body.items() for body in bodies), (route, payload)
    _, dead = outbox_contents(config.outbox.path)
    reasons = Counter(reason for (_, _, reason), n in dead.items() for _ in range(n))
    expected_dead = Counter(
        dl["reason"] for s in manifest for dl in s["expect"].get("dead_letters", [])
    )
    assert reasons == expected_dead
    for record in stored_records(config.outbox.path):
        assert record.source == broker.kind
    for stream in streams.values():
        assert await broker.backlog(stream, "brew-bridge") == 0


async def _publish_stream(broker: Broker, streams: dict[str, str]) -> int:
    """Good events with poison in the middle of every stream."""
    total = await publish_events(broker, streams, example_events(150))
    for stream in streams.values():
        await broker.publish(stream, POISON)
        total += len(POISON)
    return total + await publish_events(broker, streams, example_events(150, start=150))


def _assert_exactly_once(config_path: Path, total: int) -> None:
    config = load_config(config_path, env={})
    records = stored_records(config.outbox.path)
    assert len(records) == total, "a record is missing or stored twice"
    assert len({(r.stream, r.position) for r in records}) == total
    deliveries, dead = outbox_contents(config.outbox.path)
    want_deliveries, want_dead = expected_contents(records, compiled_routes(config))
    assert deliveries == want_deliveries
    assert dead == want_dead
    assert set(deliveries.values()) == {1}
    assert set(dead.values()) <= {1}


async def poison_is_dead_lettered_and_the_queue_moves_on(
    broker: Broker, tmp_path: Path, uid: str, *, routing_workers: int = 0
) -> None:
    path, streams = queue_config(
        tmp_path / "bridge.yaml", broker, uid, source={"routing_workers": routing_workers}
    )
    total = await _publish_stream(broker, streams)
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1])["records"] == total
    _assert_exactly_once(path, total)
    outbox_path = load_config(path, env={}).outbox.path
    _, dead = outbox_contents(outbox_path)
    values = {(r.stream, r.position): r.value for r in stored_records(outbox_path)}
    dead_values = Counter(values[coords] for (coords, _, _) in dead)
    # Each poison record, on each stream, is a dead letter (of one route or of none).
    assert set(dead_values) == set(POISON)
    assert all(n >= len(streams) for n in dead_values.values())
    for stream in streams.values():
        assert await broker.backlog(stream, "brew-bridge") == 0


async def a_kill_loses_nothing_and_doubles_nothing(
    broker: Broker, tmp_path: Path, uid: str, point: str
) -> None:
    path, streams = queue_config(tmp_path / "bridge.yaml", broker, uid)
    total = await _publish_stream(broker, streams)
    crashed = run_crash_worker(path, point, CRASH_AFTER)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    stored_before = len(stored_records(load_config(path, env={}).outbox.path))
    assert stored_before < total, "the crash came after everything was stored"
    resumed = run_crash_worker(path, "none", 0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_exactly_once(path, total)
    for stream in streams.values():
        assert await broker.backlog(stream, "brew-bridge") == 0


async def two_bridges_share_the_work(broker: Broker, tmp_path: Path, uid: str) -> None:
    """Two bridges, each with its own outbox, both consuming the same queues before the
    events arrive: both take a share, and every event is stored by exactly one."""
    paths = []
    for member in ("a", "b"):
        folder = tmp_path / member
        folder.mkdir()
        path, streams = queue_config(
            folder / "bridge.yaml", broker, uid, source=broker.member_settings(member)
        )
        paths.append(path)
    bridges = [ServingWorker(p) for p in paths]
    try:
        for bridge in bridges:
            await bridge.consuming()
        total = await publish_events(broker, streams, example_events(1200))
        outboxes = [load_config(p, env={}).outbox.path for p in paths]
        await wait_for(
            lambda: sum(len(stored_records(o)) for o in outboxes) >= total,
            60,
            "every event stored by one of the bridges",
        )
    finally:
        codes = [await bridge.stop() for bridge in bridges]
    assert codes == [0, 0], [b.err.read_text()[-3000:] for b in bridges]
    shares = [stored_records(o) for o in outboxes]
    assert all(shares), f"one bridge took nothing: {[len(s) for s in shares]}"
    seen = [{(r.stream, r.position) for r in share} for share in shares]
    assert not seen[0] & seen[1], "an event was stored by both bridges"
    assert len(seen[0] | seen[1]) == total
    for stream in streams.values():
        assert await broker.backlog(stream, "brew-bridge") == 0


class PauseRecorder(IntakeObserver):
    """The intake's pauses and resumes, with the backlog at each, and the records it
    was handed (a redelivered one counts twice)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.received = 0

    def on_batch_received(self, records: Sequence[SourceRecord]) -> None:
        self.received += len(records)

    def on_paused(self, backlog: int) -> None:
        self.events.append(("paused", backlog))

    def on_resumed(self, backlog: int) -> None:
        self.events.append(("resumed", backlog))


@dataclass
class Signups:
    """A bridge's signups source over ``total`` events, built (not run), its intake
    observed by ``recorder``."""

    config: BridgeConfig
    stream: str
    total: int
    outbox: Outbox
    recorder: PauseRecorder
    sources: Sources

    def fire_all(self) -> None:
        """The dispatcher's work, done by hand through the outbox API."""
        for row in self.outbox.claim_due(1e12, 1000, ordered=False):
            self.outbox.mark_fired(row.id, instance_id=None, run_ids=[], code="OK", now=0)

    def stored(self) -> int:
        return len(stored_records(self.config.outbox.path))


async def signups_over_the_mark(
    broker: Broker,
    tmp_path: Path,
    uid: str,
    *,
    events: int,
    high_water: int,
    low_water: int,
    source: Mapping[str, Any] | None = None,
) -> Signups:
    """Signup events published, then the bridge's source for them with a small
    high-water mark and batches of 10 (every example family: only signups are sent)."""
    path, streams = queue_config(
        tmp_path / "bridge.yaml",
        broker,
        uid,
        outbox={"high_water": high_water, "low_water": low_water},
        source={"max_batch_records": 10, **(source or {})},
    )
    config = load_config(path, env={})
    stream = streams["signups"]
    signups = (e for e in example_events(events) if e.topic == "signups")
    total = await publish_events(broker, {"signups": stream}, signups)
    outbox = Outbox.open(config.outbox.path, synchronous="NORMAL")
    recorder = PauseRecorder()
    sources = build_queue_sources(
        config, compiled_routes(config), outbox, Metrics(), observer=recorder
    )
    return Signups(config, stream, total, outbox, recorder, Sources(sources))


async def backpressure_pauses_at_the_high_water_mark(
    broker: Broker, tmp_path: Path, uid: str
) -> None:
    setup = await signups_over_the_mark(
        broker, tmp_path, uid, events=420, high_water=30, low_water=10
    )
    recorder, outbox = setup.recorder, setup.outbox
    stop = asyncio.Event()
    task = asyncio.create_task(setup.sources.run(stop))
    try:
        await wait_for(lambda: bool(recorder.events), 30, "the source to pause")
        held = outbox.backlog()
        assert held >= 30
        # Absence can only be shown over time: while paused, nothing more is stored.
        for _ in range(5):
            await asyncio.sleep(0.2)
            assert outbox.backlog() == held
        assert setup.stored() < setup.total
        assert outbox.backlog() < 30 + 3 * 10, "far more than a batch past the mark"

        def everything_stored() -> bool:
            setup.fire_all()
            return setup.stored() == setup.total

        await wait_for(everything_stored, 60, "every event stored after resuming")
        kinds = [k for k, _ in recorder.events]
        assert kinds[:2] == ["paused", "resumed"]
        assert any(b < 10 for k, b in recorder.events if k == "resumed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        outbox.close()
    assert await broker.backlog(setup.stream, "brew-bridge") == 0


async def a_stop_while_paused_is_prompt(broker: Broker, tmp_path: Path, uid: str) -> None:
    """Paused at the mark, a stop still ends the source at once (nothing waits forever
    for room in the feed), and what it held is left for the broker to deliver again."""
    setup = await signups_over_the_mark(
        broker, tmp_path, uid, events=300, high_water=20, low_water=5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(setup.sources.run(stop))
    try:
        await wait_for(lambda: bool(setup.recorder.events), 30, "the source to pause")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        stored = setup.stored()
        setup.outbox.close()
    assert stored < setup.total
    assert await broker.backlog(setup.stream, "brew-bridge") == setup.total - stored


async def a_dead_letter_is_redriven_through_the_pipeline(
    broker: Broker, tmp_path: Path, uid: str
) -> None:
    """An event no route took is a no_route dead letter with the source's own
    coordinates; once a route takes it, ``dlq redrive`` queues it with the key it would
    have had at first."""
    path, streams = queue_config(tmp_path / "bridge.yaml", broker, uid)
    event = {"id": f"evt_{uid}", "type": "customer.vip", "data": {"email": "ann@example.com"}}
    await broker.publish(streams["signups"], [json.dumps(event).encode()])
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    outbox_path = load_config(path, env={}).outbox.path
    outbox = Outbox.open(outbox_path)
    try:
        (dead,) = outbox.dead_letters()
        assert dead.reason == "no_route"
        assert dead.record is not None
        assert (dead.record.source, dead.record.stream) == (broker.kind, "signups")
        assert dead.record.position  # where the broker had it
    finally:
        outbox.close()

    doc = yaml.safe_load(path.read_text())
    doc["routes"].append(
        {
            "name": "vip",
            "sources": [f"{broker.kind}.signups"],
            "match": {"type": "customer.vip"},
            "trigger": doc["routes"][0]["trigger"],
            "payload": {
                key: {"path": "event.data.email"} if key == "email" else {"value": "x"}
                for key in _required_fields(doc, doc["routes"][0]["trigger"])
            },
        }
    )
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert cli(["dlq", "redrive", "--reason", "no_route", "--config", str(fixed)]) == 0
    deliveries, _ = outbox_contents(outbox_path)
    assert list(deliveries) == [("vip", f"vip:evt_{uid}")]


def _required_fields(doc: dict[str, Any], trigger: str) -> list[str]:
    fields = doc["triggers"][trigger]["payload_schema"]["fields"]
    return [f["key"] for f in fields if f.get("required")]


async def a_full_disk_holds_everything_and_recovers(
    broker: Broker, tmp_path: Path, uid: str, disk: Path
) -> None:
    """The outbox cannot write: nothing is acknowledged, the source lives on, and once
    the disk has room every event is stored exactly once."""
    path, streams = queue_config(
        tmp_path / "bridge.yaml", broker, uid, outbox={"path": str(disk / "outbox.db")}
    )
    config = load_config(path, env={})
    outbox = Outbox.open(config.outbox.path, synchronous="NORMAL")
    filler = fill(disk)
    total = await publish_events(broker, streams, example_events(90))
    sources = build_queue_sources(config, compiled_routes(config), outbox, Metrics())
    stop = asyncio.Event()
    task = asyncio.create_task(Sources(sources).run(stop))
    try:
        for _ in range(6):
            await asyncio.sleep(0.5)  # absence can only be shown over time
            assert not task.done()
            assert not stored_records(config.outbox.path)
        filler.unlink()
        await wait_for(
            lambda: len(stored_records(config.outbox.path)) >= total,
            60,
            "every event stored once the disk freed",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        outbox.close()
    _assert_exactly_once(path, total)
    for stream in streams.values():
        assert await broker.backlog(stream, "brew-bridge") == 0
