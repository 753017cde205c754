"""The shared rate limiter on the real Redis (:6379): replicas on one key never exceed the
limit in any window; a Redis that cannot be reached lets delivery go on, counted and logged."""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog
from pydantic import SecretStr
from queue_support import require_broker
from redis_broker import URL

from brew_bridge.config import RateLimit, RateLimitsConfig, SharedLimitConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.observe.metrics import Metrics
from brew_bridge.shared_limit import RedisSharedWindow, key_id
from brew_bridge.testing.windows import most_in_window

LIMIT, WINDOW = 5, 1.0


def window_on(api_key: str, url: str = URL) -> RedisSharedWindow:
    return RedisSharedWindow(
        SharedLimitConfig(redis_url=SecretStr(url)), target="brew", api_key=lambda: api_key
    )


def limits(url: str) -> RateLimitsConfig:
    return RateLimitsConfig(
        fire=RateLimit(limit=LIMIT, window_seconds=WINDOW),
        shared=SharedLimitConfig(redis_url=SecretStr(url)),
    )


async def test_three_replicas_on_one_key_never_exceed_the_limit() -> None:
    require_broker("Redis", "127.0.0.1", 6379)
    key = f"brew_test_{uuid.uuid4().hex}"  # a window of its own: no earlier run's entries
    windows = [window_on(key) for _ in range(3)]
    replicas = [RateBudgets(limits(URL), shared=w) for w in windows]
    granted: list[float] = []
    want = 4 * LIMIT  # four windows' worth, taken by whichever replica gets there first

    async def replica(budgets: RateBudgets) -> None:
        while len(granted) < want:
            reservation = await budgets.reserve("fire")
            granted.append(time.time())
            # Answered at once, with the server's count of this replica alone: were the
            # headers still read, each replica would think it had the key to itself.
            budgets.observe("fire", {"X-RateLimit-Remaining": "4"}, grant=reservation.grant)

    try:
        started = time.monotonic()
        async with asyncio.timeout(20):  # a deadline, not a settle: 4 windows take ~3 s
            await asyncio.gather(*(replica(b) for b in replicas))
        elapsed = time.monotonic() - started
    finally:
        for b in replicas:
            await b.settled()
        for w in windows:
            await w.close()
    assert most_in_window(granted, WINDOW) <= LIMIT
    assert all(b.sharing("fire") for b in replicas)
    # The windows were used: 20 grants in a little over three windows (the first is free).
    assert elapsed < 3 * WINDOW + 1.5, elapsed


async def test_redis_keys_hold_a_hash_of_the_api_key_never_the_key() -> None:
    require_broker("Redis", "127.0.0.1", 6379)
    from redis.asyncio import Redis

    secret = f"brew_secret_{uuid.uuid4().hex}"
    window = window_on(secret)
    client = Redis.from_url(URL)
    try:
        assert await window.take("fire", LIMIT, WINDOW, 1) == 0.0
        names = [k.decode() async for k in client.scan_iter(match="brew-bridge:*")]
    finally:
        await client.aclose()
        await window.close()
    ours = [n for n in names if key_id(secret) in n]
    assert ours
    assert ours == [f"brew-bridge:rate:brew:{key_id(secret)}:fire"]
    assert not any(secret in n for n in names)


async def test_a_full_shared_window_says_when_to_ask_again() -> None:
    require_broker("Redis", "127.0.0.1", 6379)
    key = f"brew_test_{uuid.uuid4().hex}"
    window = window_on(key)
    try:
        assert [await window.take("fire", 2, 2.0, g) for g in (1, 2)] == [0.0, 0.0]
        wait = await window.take("fire", 2, 2.0, 3)
        await window.settle("fire", 1, 2.0, counted=False)  # refused by the target: freed
        freed = await window.take("fire", 2, 2.0, 4)
    finally:
        await window.close()
    assert 1.5 < wait <= 2.0  # the oldest leaves 2 s after it was taken
    assert freed == 0.0


async def test_a_slot_counts_from_its_answer() -> None:
    require_broker("Redis", "127.0.0.1", 6379)
    key = f"brew_test_{uuid.uuid4().hex}"
    window = window_on(key)
    try:
        assert await window.take("fire", 1, 1.0, 1) == 0.0
        # Ask (refused, nothing taken) until Redis's clock moved 0.3 s past the grant.
        deadline = time.monotonic() + 5
        while (wait := await window.take("fire", 1, 1.0, 2)) > 0.7:
            assert time.monotonic() < deadline, "Redis's clock did not move"
            await asyncio.sleep(0.05)
        # The answer comes now: the target saw the request somewhere in between, so the
        # slot is held from the answer and the wait starts again from there.
        await window.settle("fire", 1, 1.0, counted=True)
        later = await window.take("fire", 1, 1.0, 3)
    finally:
        await window.close()
    assert 0 < wait <= 0.7
    assert later > 0.9


async def test_redis_down_falls_back_to_the_local_window_counted_and_logged_once() -> None:
    # Nothing listens on port 1: every connection is refused.
    url = "redis://bridge:s3cret-pw@127.0.0.1:1/0"
    metrics = Metrics()
    shared = window_on("k", url)
    budgets = RateBudgets(limits(url), metrics, shared=shared)
    try:
        with structlog.testing.capture_logs() as logs:
            async with asyncio.timeout(5):
                for _ in range(3):
                    await budgets.reserve("fire")
    finally:
        await shared.close()
    assert budgets.window("fire").used(budgets.now()) == 3  # the local window still counts
    assert not budgets.sharing("fire")
    errors = metrics.registry.get_sample_value(
        "brew_bridge_rate_budget_shared_errors_total", {"target": "brew", "policy": "fire"}
    )
    assert errors == 3
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["shared"] == "redis://127.0.0.1:1/0"
    assert "s3cret" not in repr(logs)
