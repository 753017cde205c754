"""Brew's rate limit as the simulator enforces it: a rolling window per key and policy.

A request is admitted when fewer than ``limit`` requests were admitted in the last
``window`` seconds; refused requests do not count, so a client that backs off as told
gets through when the oldest admitted request leaves the window. The numbers reported
follow brew-api.md §1.4: ``remaining`` after this request, ``reset`` as the epoch second
when the window is fully empty again, ``retry_after`` as whole delta-seconds (>= 1)
until a slot frees. Pure: every call takes ``now``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_POLICIES", "Decision", "Policy", "RateLimiter", "RollingWindow"]


@dataclass(frozen=True)
class Policy:
    """``limit`` requests per rolling ``window_seconds``."""

    limit: int
    window_seconds: float


# The old docs' numbers (brew-api.md §9); triggers.write is the simulator's own choice.
DEFAULT_POLICIES: Mapping[str, Policy] = {
    "automation.runs.write": Policy(60, 60.0),
    "automation.runs.read": Policy(100, 60.0),
    "triggers.read": Policy(100, 60.0),
    "triggers.write": Policy(60, 60.0),
}


@dataclass(frozen=True)
class Decision:
    """The verdict on one request, with the numbers for the ``X-RateLimit-*`` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds
    retry_after: int  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` (and ``Retry-After`` when refused)."""
        out = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset),
        }
        if not self.allowed:
            out["retry-after"] = str(self.retry_after)
        return out


class RollingWindow:
    """Admission times of the last ``window_seconds``; at most ``limit`` of them."""

    __slots__ = ("_hits", "limit", "window")

    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate window needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window = window_seconds
        self._hits: deque[float] = deque()

    def hit(self, now: float) -> Decision:
        """Admit or refuse one request at ``now``."""
        hits = self._hits
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return Decision(
                True, self.limit, self.limit - len(hits), math.ceil(now + self.window), 0
            )
        retry_after = max(1, math.ceil(hits[0] + self.window - now))
        return Decision(False, self.limit, 0, math.ceil(hits[-1] + self.window), retry_after)


class RateLimiter:
    """One :class:`RollingWindow` per (API key identity, policy)."""

    def __init__(self, policies: Mapping[str, Policy] = DEFAULT_POLICIES) -> None:
        self.policies: dict[str, Policy] = dict(policies)
        self._windows: dict[tuple[str, str], RollingWindow] = {}

    def check(self, who: str, policy: str, now: float) -> Decision:
        window = self._windows.get((who, policy))
        if window is None:
            rule = self.policies[policy]
            window = RollingWindow(rule.limit, rule.window_seconds)
            self._windows[(who, policy)] = window
        return window.hit(now)

    def configure(self, policies: Mapping[str, Policy]) -> None:
        """Change some policies; their windows start empty, the others keep counting."""
        self.policies.update(policies)
        for key in [k for k in self._windows if k[1] in policies]:
            del self._windows[key]

    def clear(self) -> None:
        self._windows.clear()
