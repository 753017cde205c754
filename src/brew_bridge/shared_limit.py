"""The shared rate limiter: a moving window in Redis that every replica takes its slots from.

Set with ``rate_limits.shared.redis_url`` (off by default). Every replica using the same
API key on the same target takes each request's slot in one moving window per policy
(the :pypi:`limits` package's, on redis-py): at most ``limit`` slots in any ``window``
seconds, counted across replicas exactly, where the servers' ``X-RateLimit-*`` headers
are one round trip old. It implements :class:`~brew_bridge.core.ratelimit.SharedWindow`;
what happens when Redis fails is decided there (the local window goes on alone).

The window's key is ``brew-bridge:LIMITER/<target>/<key id>/<policy>/<limit>/<seconds>``, where
the key id is a hash of the API key: replicas on different keys never share a window and
the key itself never reaches Redis. Windows are whole seconds in Redis (a fraction is
rounded up: a longer window is only stricter). The entries carry each replica's wall
clock, so the replicas' clocks must agree to well within :data:`GUARD` (NTP does).

A full window says when its oldest entry leaves; the caller asks again :data:`GUARD`
after that, not at once: the target counts a request when it arrives, a little after
the slot was taken, and two requests' trips differ by a few milliseconds. Without the
guard a slot freed exactly at the window's edge can land a request inside the target's
window of the one it replaced.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from brew_bridge.config.queues import redacted_url
from brew_bridge.config.sections import SharedLimitConfig

__all__ = ["GUARD", "RedisSharedWindow", "key_id"]

# Seconds between the oldest slot leaving a full window and asking again (see above).
GUARD = 0.05

_PREFIX = "brew-bridge"


def key_id(api_key: str) -> str:
    """A short, stable stand-in for the API key in Redis key names (never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class RedisSharedWindow:
    """One target's shared windows (one per policy) in Redis."""

    def __init__(
        self,
        config: SharedLimitConfig,
        *,
        target: str,
        api_key: Callable[[], str],
        timeout: float = 1.0,
    ) -> None:
        """``api_key`` returns the key in use (it may be reread from its file)."""
        url = config.redis_url.get_secret_value()
        self._shown = redacted_url(url)
        # Our own pool (limits passes it to redis-py), so that close() can release it.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            key_prefix=_PREFIX,
            connection_pool=self._pool,  # type: ignore[arg-type]  # documented, typed narrower
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._target = target
        self._api_key = api_key

    def describe(self) -> str:
        return self._shown

    async def take(self, policy: str, limit: int, window: float) -> float:
        item = RateLimitItemPerSecond(limit, math.ceil(window))
        scope = (self._target, key_id(self._api_key()), policy)
        if await self._limiter.hit(item, *scope):
            return 0.0
        stats = await self._limiter.get_window_stats(item, *scope)
        return max(stats.reset_time - time.time(), 0.0) + GUARD

    async def close(self) -> None:
        await self._pool.aclose()
