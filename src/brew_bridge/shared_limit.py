"""The shared rate limiter: a sliding window in Redis that every replica takes its slots from.

Set with ``rate_limits.shared.redis_url`` (off by default). Every replica using the same
API key on the same target takes each request's slot in one window per policy: at most
``limit`` slots in any ``window`` seconds, counted across replicas exactly, where the
target's ``X-RateLimit-*`` headers are one round trip old. It implements
:class:`~brew_bridge.core.ratelimit.SharedWindow`; what happens when Redis fails is
decided there (the local window goes on alone).

It is the local :class:`~brew_bridge.core.ratelimit.SlidingWindow`'s log, shared: a
sorted set of slots scored by time, and a slot moves to its answer's time when the
answer comes (or leaves, when the request was refused or never sent). The target counts
a request when it arrives, somewhere between the grant and the answer, so a slot held
from the answer never frees early. Two Lua scripts keep each step atomic, on Redis's own
clock (``TIME``), so the replicas' clocks need not agree. (The ``limits`` package's
moving window was measured first, in bench/replicas.py: it keeps a slot from its grant
and counts whole seconds, and three replicas met 7-15 429s at the window's edges.)

The key is ``brew-bridge:rate:<target>:<key id>:<policy>``, the key id a hash of the API
key: replicas on different keys never share a window, and the key never reaches Redis.
It expires one window after its last change, when none of its slots counts any more.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable

import redis.asyncio

from brew_bridge.config.queues import redacted_url
from brew_bridge.config.sections import SharedLimitConfig

__all__ = ["RedisSharedWindow", "key_id"]

# KEYS[1]: the window. ARGV: limit, window (ms), slot. Returns 0 (taken) or the ms until
# the oldest slot leaves.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS[1]: the window. ARGV: slot, window (ms), 1 (counted: move it to now) or 0 (drop it).
_SETTLE = """
if ARGV[3] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  end
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


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
        self._client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._take = self._client.register_script(_TAKE)
        self._settle = self._client.register_script(_SETTLE)
        self._target = target
        self._api_key = api_key
        self._replica = uuid.uuid4().hex[:12]  # slots of two processes never collide

    def describe(self) -> str:
        return self._shown

    def _key(self, policy: str) -> str:
        return f"brew-bridge:rate:{self._target}:{key_id(self._api_key())}:{policy}"

    async def take(self, policy: str, limit: int, window: float, grant: int) -> float:
        args = (limit, math.ceil(window * 1000), f"{self._replica}:{grant}")
        wait_ms = await self._take(keys=[self._key(policy)], args=args)
        return int(wait_ms) / 1000

    async def settle(self, policy: str, grant: int, window: float, *, counted: bool) -> None:
        args = (f"{self._replica}:{grant}", math.ceil(window * 1000), 1 if counted else 0)
        await self._settle(keys=[self._key(policy)], args=args)

    async def close(self) -> None:
        await self._client.aclose()
