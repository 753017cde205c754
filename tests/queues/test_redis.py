"""The Redis Streams source on the real Redis (:6379): the shared queue checks, and what is
Redis's own: a dead member's pending entries claimed once idle (and not before), a
restarted member's own pending entries taken back at once, entries deleted while pending
let go, a value that is not UTF-8 read with its batch, FastStream's envelope read, a new
group's start, one XACK per settled batch, and a password that never shows (errors,
AsyncAPI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import queue_checks
from faststream.redis import RedisBroker as FastStreamRedis
from faststream.redis.parser.binary import BinaryMessageFormatV1
from kafka_helpers import stored_records
from queue_support import queue_config, require_broker, run_crash_worker
from redis.asyncio import Redis
from redis_broker import URL, RedisBroker

from brew_bridge.asyncapi import asyncapi_document
from brew_bridge.config import compiled_routes, load_config
from brew_bridge.config.queues import RedisSourceConfig
from brew_bridge.errors import SourceError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.redis import redis_record
from brew_bridge.sources.redis.acks import Acks
from brew_bridge.sources.registry import build_queue_sources
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import example_events


@pytest.fixture
async def redis() -> AsyncIterator[RedisBroker]:
    require_broker("Redis", "127.0.0.1", 6379)
    client = Redis.from_url(URL)
    broker = RedisBroker(client)
    try:
        yield broker
    finally:
        await broker.cleanup()
        await client.aclose()


async def test_samples_fire_once_each_through_redis(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.samples_fire_once_each(redis, tmp_path, uid)


async def test_poison_is_dead_lettered_and_the_stream_moves_on(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.poison_is_dead_lettered_and_the_queue_moves_on(redis, tmp_path, uid)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_outbox_commit", "after_outbox_commit"])
async def test_a_kill_loses_nothing_and_doubles_nothing(
    redis: RedisBroker, tmp_path: Path, uid: str, point: str
) -> None:
    await queue_checks.a_kill_loses_nothing_and_doubles_nothing(redis, tmp_path, uid, point)


@pytest.mark.slow
async def test_two_bridges_share_one_group(redis: RedisBroker, tmp_path: Path, uid: str) -> None:
    await queue_checks.two_bridges_share_the_work(redis, tmp_path, uid)


async def test_backpressure_pauses_at_the_high_water_mark(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.backpressure_pauses_at_the_high_water_mark(redis, tmp_path, uid)


async def test_a_stop_while_paused_is_prompt(redis: RedisBroker, tmp_path: Path, uid: str) -> None:
    await queue_checks.a_stop_while_paused_is_prompt(redis, tmp_path, uid)


@pytest.mark.slow
async def test_a_full_disk_holds_everything_and_recovers(
    redis: RedisBroker, tmp_path: Path, uid: str, disk: Path
) -> None:
    await queue_checks.a_full_disk_holds_everything_and_recovers(redis, tmp_path, uid, disk)


async def test_a_dead_letter_is_redriven_through_the_pipeline(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    await queue_checks.a_dead_letter_is_redriven_through_the_pipeline(redis, tmp_path, uid)


async def _signups(
    redis: RedisBroker, tmp_path: Path, uid: str, **source: object
) -> tuple[Path, str, int]:
    """A config whose signups stream holds example events (and the group, made at 0)."""
    path, streams = queue_config(tmp_path / "bridge.yaml", redis, uid, source=source)
    stream = streams["signups"]
    events = [e for e in example_events(200) if e.topic == "signups"]
    await redis.publish(stream, [e.value for e in events])
    await redis.client.xgroup_create(stream, "brew-bridge", id="0")
    return path, stream, len(events)


async def _read_unacked(redis: RedisBroker, stream: str, consumer: str, count: int) -> int:
    """Entries a member reads and never acknowledges (it dies): how many."""
    answer = await redis.client.xreadgroup("brew-bridge", consumer, {stream: ">"}, count=count)
    return sum(len(entries) for _, entries in answer)


def _drain(path: Path) -> int:
    result = run_crash_worker(path, "none", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    records: int = json.loads(result.stdout.splitlines()[-1])["records"]
    return records


def _stored_positions(path: Path) -> set[str]:
    outbox = load_config(path, env={}).outbox.path
    return {r.position for r in stored_records(outbox) if r.stream == "signups"}


async def test_a_dead_members_entries_are_claimed_once_idle_and_not_before(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    path, stream, total = await _signups(
        redis, tmp_path, uid, consumer="alive", min_idle_seconds=60
    )
    dead = await _read_unacked(redis, stream, "dead", 30)
    assert dead == 30
    # Not idle long enough: the entries stay the dead member's.
    assert _drain(path) == total - dead
    assert await redis.backlog(stream, "brew-bridge") == dead
    path, _ = queue_config(
        tmp_path / "bridge.yaml", redis, uid, source={"consumer": "alive", "min_idle_seconds": 0.3}
    )
    assert _drain(path) == dead
    assert len(_stored_positions(path)) == total
    assert await redis.backlog(stream, "brew-bridge") == 0


async def test_a_restarted_member_takes_its_own_pending_entries_back_at_once(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    # min_idle_seconds far above the test's length: only the start's own read can do it.
    path, stream, total = await _signups(redis, tmp_path, uid, consumer="me", min_idle_seconds=600)
    assert await _read_unacked(redis, stream, "me", 25) == 25
    assert _drain(path) == total
    assert len(_stored_positions(path)) == total
    assert await redis.backlog(stream, "brew-bridge") == 0


async def test_entries_deleted_while_pending_are_let_go(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    path, stream, total = await _signups(redis, tmp_path, uid, consumer="me", min_idle_seconds=600)
    answer = await redis.client.xreadgroup("brew-bridge", "me", {stream: ">"}, count=10)
    read = [entry_id for _, entries in answer for entry_id, _ in entries]
    assert await redis.client.xdel(stream, *read[:4]) == 4  # trimmed, still pending
    assert _drain(path) == total - 4
    assert await redis.backlog(stream, "brew-bridge") == 0


async def test_a_value_that_is_not_utf8_is_read_with_its_batch(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    # min_idle_seconds far above the test: only the batch reader can store these.
    path, streams = queue_config(
        tmp_path / "bridge.yaml", redis, uid, source={"min_idle_seconds": 600}
    )
    good = [e.value for e in example_events(30) if e.topic == "signups"]
    latin1 = '{"type": "user.created", "name": "Ren\u00e9e"}'.encode("latin-1")
    await redis.publish(streams["signups"], [good[0], latin1, *good[1:]])
    assert _drain(path) == len(good) + 1
    values = {r.value for r in stored_records(load_config(path, env={}).outbox.path)}
    assert latin1 in values
    assert await redis.backlog(streams["signups"], "brew-bridge") == 0


async def test_a_faststream_publishers_envelope_is_read_as_its_body_and_headers(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    path, streams = queue_config(tmp_path / "bridge.yaml", redis, uid)
    event = next(e for e in example_events(20) if e.topic == "signups")
    publisher = FastStreamRedis(URL, logger=None)  # type: ignore[arg-type]
    async with publisher:
        await publisher.publish(event.value, stream=streams["signups"], headers={"tenant": "t1"})
    assert _drain(path) == 1
    (record,) = stored_records(load_config(path, env={}).outbox.path)
    assert record.value == event.value
    assert dict(record.headers)["tenant"] == b"t1"


async def test_a_new_group_at_latest_skips_what_the_stream_held(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    path, streams = queue_config(
        tmp_path / "bridge.yaml", redis, uid, source={"start_at": "latest"}
    )
    stream = streams["signups"]
    await redis.publish(stream, [e.value for e in example_events(30) if e.topic == "signups"])
    assert _drain(path) == 0
    assert int(await redis.client.xlen(stream)) > 0


async def test_an_unreachable_redis_names_the_source_and_never_the_password(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    url = "redis://bridge:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
    path, _ = queue_config(tmp_path / "bridge.yaml", redis, uid, source={"url": url})
    config = load_config(path, env={})
    outbox = Outbox.open(config.outbox.path, synchronous="NORMAL")
    try:
        source = build_queue_sources(config, compiled_routes(config), outbox, Metrics())[0]
        with pytest.raises(SourceError) as raised:
            await asyncio.wait_for(source.run(asyncio.Event()), 30)
    finally:
        outbox.close()
    text = str(raised.value)
    assert f"source {source.name}: cannot consume from redis://127.0.0.1:1/0" in text
    assert "s3cret-pw" not in text
    assert "bridge:" not in text


async def test_the_asyncapi_document_shows_the_group_read_and_never_the_password(
    redis: RedisBroker, tmp_path: Path, uid: str
) -> None:
    url = "redis://bridge:s3cret-pw@127.0.0.1:6379/0"
    path, streams = queue_config(
        tmp_path / "bridge.yaml", redis, uid, source={"url": url, "consumer": "pod-1"}
    )
    document = asyncapi_document(load_config(path, env={}))
    assert "s3cret-pw" not in json.dumps(document)
    channel = document["channels"]["redis.signups"]
    assert channel["address"] == streams["signups"]
    binding = channel["bindings"]["redis"]
    assert (binding["method"], binding["groupName"], binding["consumerName"]) == (
        "xreadgroup",
        "brew-bridge",
        "pod-1",
    )
    assert document["servers"]["redis.signups"]["host"] == "127.0.0.1:6379"


class _CountingRedis(Redis):
    """The real client, counting its XACK round trips."""

    xacks = 0

    async def xack(self, name: Any, groupname: Any, *ids: Any) -> Any:
        self.xacks += 1
        return await super().xack(name, groupname, *ids)


async def test_a_settled_batch_leaves_as_one_xack(redis: RedisBroker, uid: str) -> None:
    stream = f"acks-{uid}"
    await redis.publish(stream, [b"{}"] * 120)
    await redis.client.xgroup_create(stream, "brew-bridge", id="0")
    answer = await redis.client.xreadgroup("brew-bridge", "me", {stream: ">"}, count=120)
    entries = [(entry_id, fields) for _, got in answer for entry_id, fields in got]
    client = _CountingRedis.from_url(URL)
    try:
        acks = Acks(stream, "brew-bridge")
        acks.attach(client)
        items = acks.delivered("s", RedisSourceConfig(stream=stream), entries)
        for item in items[:100]:  # settled in one go, as the feed settles a batch
            await item.ack()
        await acks.drain()
        assert client.xacks == 1
        assert await redis.backlog(stream, "brew-bridge") == 20
        for item in items[100:]:
            await item.reject()  # our dead letter: acknowledged as well
        await acks.drain()
        assert client.xacks == 2
        assert await redis.backlog(stream, "brew-bridge") == 0
    finally:
        await client.aclose()


def test_a_record_is_known_by_its_entry_id() -> None:
    fields = {b"value": b'{"a": 1}', b"key": b"user-7", b"type": b"signup"}
    a = redis_record("signups", b"1700000000123-4", fields)
    again = redis_record("signups", "1700000000123-4", dict(fields))
    assert a == again
    assert a.position == "1700000000123-4"
    assert a.timestamp_ms == 1700000000123
    assert (a.source, a.stream, a.key, a.value) == ("redis", "signups", b"user-7", b'{"a": 1}')
    assert a.headers == (("type", b"signup"),)
    renamed = redis_record(
        "signups", b"1-0", {b"body": b"{}", b"key": b"k"}, value_field="body", key_field=None
    )
    assert (renamed.value, renamed.key) == (b"{}", None)
    assert dict(renamed.headers) == {"key": b"k"}
    # No value field: an empty value (the intake's invalid_json), the fields kept as headers.
    missing = redis_record("signups", b"2-0", {b"other": b"x"})
    assert missing.value == b""
    assert missing.headers == (("other", b"x"),)


async def test_a_faststream_envelope_gives_its_body_and_headers() -> None:
    envelope = await BinaryMessageFormatV1.encode(
        message=b'{"type": "signup"}', reply_to=None, headers={"tenant": "t1"}, correlation_id="c-1"
    )
    record = redis_record("signups", b"5-0", {b"__data__": envelope})
    assert record.value == b'{"type": "signup"}'
    assert dict(record.headers)["tenant"] == b"t1"
    assert record.key is None
