"""The NATS JetStream source on the real nats-server (:4222): the shared queue checks,
and what is JetStream's own: dead letters terminated once stored, the stream and the
durable consumer created as configured, one subject of several read, and the record's
position (the stream sequence)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
import queue_checks
import yaml
from kafka_helpers import outbox_contents, stored_records
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats_broker import ACK_WAIT_SECONDS, URL, NatsBroker, subject_of
from queue_support import (
    POISON,
    queue_config,
    require_broker,
    run_crash_worker,
    wait_for,
)

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.errors import SourceError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.nats import nats_record
from brew_bridge.sources.registry import build_queue_sources
from brew_bridge.store import Outbox


@pytest.fixture
async def nats_broker() -> AsyncIterator[NatsBroker]:
    require_broker("NATS JetStream", "127.0.0.1", 4222)
    client = await nats.connect(URL)
    broker = NatsBroker(client)
    try:
        yield broker
    finally:
        await broker.cleanup()
        await client.close()


async def test_samples_fire_once_each_through_nats(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.samples_fire_once_each(nats_broker, tmp_path, uid)


async def test_poison_is_dead_lettered_and_the_stream_moves_on(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.poison_is_dead_lettered_and_the_queue_moves_on(nats_broker, tmp_path, uid)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_outbox_commit", "after_outbox_commit"])
async def test_a_kill_loses_nothing_and_doubles_nothing(
    nats_broker: NatsBroker, tmp_path: Path, uid: str, point: str
) -> None:
    await queue_checks.a_kill_loses_nothing_and_doubles_nothing(nats_broker, tmp_path, uid, point)


@pytest.mark.slow
async def test_two_bridges_share_one_durable_consumer(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.two_bridges_share_the_work(nats_broker, tmp_path, uid)


async def test_backpressure_pauses_at_the_high_water_mark(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.backpressure_pauses_at_the_high_water_mark(nats_broker, tmp_path, uid)


async def test_a_stop_while_paused_is_prompt(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.a_stop_while_paused_is_prompt(nats_broker, tmp_path, uid)


@pytest.mark.slow
async def test_a_full_disk_holds_everything_and_recovers(
    nats_broker: NatsBroker, tmp_path: Path, uid: str, disk: Path
) -> None:
    await queue_checks.a_full_disk_holds_everything_and_recovers(nats_broker, tmp_path, uid, disk)


async def test_a_dead_letter_is_redriven_through_the_pipeline(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.a_dead_letter_is_redriven_through_the_pipeline(nats_broker, tmp_path, uid)


async def test_a_dead_letter_is_terminated_once_stored(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    """Each poison message is terminated (the server's MSG_TERMINATED advisory names
    its sequence), never acknowledged as if it were handled, and never delivered again."""
    path, streams = queue_config(tmp_path / "bridge.yaml", nats_broker, uid)
    stream = streams["payments"]
    await nats_broker.publish(stream, [b'{"type": "payment.nobody"}', *POISON])
    terminated: list[int] = []

    async def on_advisory(msg: nats.aio.msg.Msg) -> None:
        terminated.append(int(json.loads(msg.data)["stream_seq"]))

    advisories = await nats_broker.client.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.brew-bridge", cb=on_advisory
    )
    await nats_broker.client.flush()  # subscribed before the bridge runs
    try:
        result = await asyncio.to_thread(run_crash_worker, path, "none", 0)
        assert result.returncode == 0, result.stderr[-3000:]
        outbox_path = load_config(path, env={}).outbox.path
        _, dead = outbox_contents(outbox_path)
        dead_positions = {sequence(pos) for (s, pos), _, _ in dead if s == "payments"}
        assert len(dead_positions) == 1 + len(POISON)
        await wait_for(
            lambda: len(terminated) >= len(dead_positions), 10, "a MSG_TERMINATED per dead letter"
        )
        assert sorted(terminated) == sorted(dead_positions)
    finally:
        await advisories.unsubscribe()
    assert await nats_broker.backlog(stream) == 0
    # Terminated is final: past ack_wait a second bridge run receives nothing again.
    await asyncio.sleep(ACK_WAIT_SECONDS + 0.5)
    again = run_crash_worker(path, "none", 0)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.splitlines()[-1])["records"] == 0


async def test_the_stream_and_the_durable_are_created_as_configured(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    path, streams = queue_config(tmp_path / "bridge.yaml", nats_broker, uid)
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    for stream in streams.values():
        info = await nats_broker.js.stream_info(stream)
        assert info.config.subjects == [subject_of(stream)]
        consumer = await nats_broker.js.consumer_info(stream, "brew-bridge")
        assert consumer.config.durable_name == "brew-bridge"
        assert consumer.config.ack_wait == pytest.approx(ACK_WAIT_SECONDS)
        assert consumer.config.filter_subject == subject_of(stream)


async def test_only_the_configured_subject_of_the_stream_is_read(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    stream = f"signups-{uid}"
    wanted, other = f"{subject_of(stream)}.in", f"{subject_of(stream)}.out"
    await nats_broker.js.add_stream(StreamConfig(name=stream, subjects=[wanted, other]))
    nats_broker.declared.add(stream)
    path, _ = queue_config(tmp_path / "bridge.yaml", nats_broker, uid)
    doc = yaml.safe_load(path.read_text())
    doc["sources"]["nats"]["signups"].update(subjects=[wanted, other], subject=wanted)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    for i in range(5):
        await nats_broker.js.publish(other, b'{"n": %d}' % i, stream=stream)
        await nats_broker.js.publish(wanted, b'{"n": %d}' % i, stream=stream)
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [
        r for r in stored_records(load_config(path, env={}).outbox.path) if r.stream == "signups"
    ]
    assert sorted(r.key for r in records) == [wanted.encode()] * 5
    # Stream sequences: the wanted subject's messages are the even ones (published second).
    assert sorted(sequence(r.position) for r in records) == [2, 4, 6, 8, 10]


async def test_an_unreachable_server_is_a_source_error_without_the_password(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path, _ = queue_config(
        tmp_path / "bridge.yaml",
        _Unreachable(port),
        "x",
        source={"url": f"nats://bridge:s3cret-pw@127.0.0.1:{port}", "connect_timeout_seconds": 3},
    )
    config = load_config(path, env={})
    outbox = Outbox.open(config.outbox.path, synchronous="NORMAL")
    try:
        sources = build_queue_sources(config, compiled_routes(config), outbox, Metrics())
        with pytest.raises(SourceError) as raised:
            await asyncio.wait_for(sources[0].drain(), 30)
    finally:
        outbox.close()
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert f"nats://127.0.0.1:{port}" in message
    assert "cannot consume" in message
    assert "connect_timeout_seconds=3" in message


class _Unreachable:
    kind = "nats"

    def __init__(self, port: int) -> None:
        self.port = port

    def settings(self, stream: str) -> dict[str, object]:
        return {"stream": stream, "subjects": [subject_of(stream)]}


def test_a_record_is_known_by_its_stream_sequence_across_redeliveries() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    common = {"subject": "bridge.orders", "headers": {"h": "1"}, "timestamp": at}
    first = nats_record("orders", b"{}", stream_sequence=41, **common)  # type: ignore[arg-type]
    again = nats_record("orders", b"{}", stream_sequence=41, **common)  # type: ignore[arg-type]
    other = nats_record("orders", b"{}", stream_sequence=42, **common)  # type: ignore[arg-type]
    assert first == again
    assert first.position == "41"
    assert other.position == "42"
    assert first.source == "nats"
    assert first.stream == "orders"
    assert first.key == b"bridge.orders"
    assert first.value == b"{}"
    assert first.headers == (("h", b"1"),)
    assert first.timestamp_ms == int(at.timestamp() * 1000)
    bare = nats_record("orders", b"x", subject="s", stream_sequence=1, headers=None, timestamp=None)
    assert bare.headers == ()
    assert bare.timestamp_ms is None


def test_a_stream_created_again_gives_new_positions() -> None:
    common = {"subject": "s", "headers": None, "timestamp": None}
    old = datetime(2026, 1, 1, tzinfo=UTC)
    new = datetime(2026, 6, 1, tzinfo=UTC)
    before = nats_record("o", b"{}", stream_sequence=1, stream_created=old, **common)  # type: ignore[arg-type]
    after = nats_record("o", b"{}", stream_sequence=1, stream_created=new, **common)  # type: ignore[arg-type]
    assert before.position == f"1@{int(old.timestamp())}"
    assert after.position != before.position


def sequence(position: str) -> int:
    """The stream sequence of a record's position (``42@<stream created>``)."""
    return int(position.partition("@")[0])


@pytest.mark.slow
async def test_a_killed_bridges_messages_come_back_after_ack_wait_not_on_disconnect(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    """Why ack_wait is the crash-recovery delay (and --once waits for the durable to
    settle): the connection of a SIGKILLed bridge closes at once, yet what it held stays
    unacknowledged, delivered to nobody, until ack_wait has passed since its delivery."""
    ack_wait = 5.0
    path, streams = queue_config(
        tmp_path / "bridge.yaml",
        nats_broker,
        uid,
        source={"ack_wait_seconds": ack_wait, "max_batch_records": 20},
    )
    stream = streams["signups"]
    total = 200
    await nats_broker.publish(stream, [b'{"n": %d}' % i for i in range(total)])
    for other in streams.values():  # the other sources have nothing: the crash is signups'
        if other != stream:
            await nats_broker.declare(other)
    crashed = await asyncio.to_thread(run_crash_worker, path, "after_outbox_commit", 1)
    killed_at = asyncio.get_running_loop().time()
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    held = (await nats_broker.js.consumer_info(stream, "brew-bridge")).num_ack_pending
    assert held, "the killed bridge held nothing"
    sub = await nats_broker.js.pull_subscribe_bind("brew-bridge", stream)
    # Well within ack_wait: only what was never delivered comes (the absence of the held
    # ones can only be shown over a window).
    fresh = await _fetch(sub, total, 1.5)
    assert asyncio.get_running_loop().time() - killed_at < ack_wait - 1, "the machine is too slow"
    assert len(fresh) == total - held
    assert {m.metadata.num_delivered for m in fresh} == {1}
    for m in fresh:
        await m.ack_sync()
    # Past ack_wait: the held ones, delivered a second time.
    again = await _fetch(sub, held, ack_wait + 5)
    assert len(again) == held
    assert {m.metadata.num_delivered for m in again} == {2}
    seqs = {m.metadata.sequence.stream for m in fresh} | {m.metadata.sequence.stream for m in again}
    assert seqs == set(range(1, total + 1))
    for m in again:
        await m.ack_sync()
    await sub.unsubscribe()


async def _fetch(sub: JetStreamContext.PullSubscription, want: int, seconds: float) -> list[Msg]:
    """Fetch until ``want`` messages came or ``seconds`` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    got: list[Msg] = []
    while len(got) < want and (left := deadline - loop.time()) > 0:
        with contextlib.suppress(nats.errors.TimeoutError):
            got += await sub.fetch(want - len(got), timeout=left)
    return got


async def test_a_pause_longer_than_ack_wait_delivers_nothing_again(
    nats_broker: NatsBroker, tmp_path: Path, uid: str
) -> None:
    """What the bridge holds while paused is kept in progress: past ack_wait the server
    does not hand it out again once the bridge fetches on."""
    ack_wait = 1.0
    setup = await queue_checks.signups_over_the_mark(
        nats_broker,
        tmp_path,
        uid,
        events=240,
        high_water=30,
        low_water=10,
        source={"ack_wait_seconds": ack_wait},
    )
    stop = asyncio.Event()
    task = asyncio.create_task(setup.sources.run(stop))
    try:
        await wait_for(lambda: bool(setup.recorder.events), 30, "the source to pause")
        info = await nats_broker.js.consumer_info(setup.stream, "brew-bridge")
        assert info.num_ack_pending, "the paused bridge holds nothing"
        # Absence can only be shown over time: three ack_waits paused.
        await asyncio.sleep(3 * ack_wait)

        def everything_stored() -> bool:
            setup.fire_all()
            return setup.stored() == setup.total

        await wait_for(everything_stored, 60, "every message stored after resuming")
        # A message delivered again would be received twice (and refused by the outbox).
        assert setup.recorder.received == setup.total
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        setup.outbox.close()
    assert await nats_broker.backlog(setup.stream) == 0
