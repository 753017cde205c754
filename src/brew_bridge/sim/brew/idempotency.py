"""Idempotency keys as Brew keeps them: same key and body replays, another body conflicts.

Keys live in a namespace (the brand or organization the API key acts for) and expire
``window_seconds`` after they were stored (24 h by default, brew-api.md §1.6). A
*fingerprint* stands for the request body; the store compares fingerprints, never
bodies. Only answers worth replaying are stored (the caller decides), so a refused
request can be retried with the same key once its cause is fixed. Pure: every call
takes ``now``; expired entries are dropped as time passes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_WINDOW_SECONDS", "Conflict", "IdempotencyStore", "Replay"]

DEFAULT_WINDOW_SECONDS = 24 * 60 * 60.0


@dataclass(frozen=True)
class Replay:
    """The key was used with the same body: answer with ``stored`` again."""

    stored: Any
    stored_at: float


@dataclass(frozen=True)
class Conflict:
    """The key was used with a different body."""

    stored_at: float


@dataclass
class _Entry:
    fingerprint: str
    value: Any
    stored_at: float


class IdempotencyStore:
    """Remembered answers by ``(namespace, key)`` for ``window_seconds``."""

    def __init__(self, window_seconds: float = DEFAULT_WINDOW_SECONDS) -> None:
        if window_seconds <= 0:
            raise ValueError("idempotency window_seconds must be > 0")
        self.window_seconds = window_seconds
        # Insertion order is storage order, so the oldest entries are always first.
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_seconds
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.stored_at > horizon:
                break
            entries.popitem(last=False)

    def lookup(
        self, namespace: str, key: str, fingerprint: str, now: float
    ) -> Replay | Conflict | None:
        """What a request with this key and body should get; ``None``: a fresh request."""
        self._expire(now)
        entry = self._entries.get((namespace, key))
        if entry is None:
            return None
        if entry.fingerprint == fingerprint:
            return Replay(entry.value, entry.stored_at)
        return Conflict(entry.stored_at)

    def remember(self, namespace: str, key: str, fingerprint: str, value: Any, now: float) -> None:
        """Store the answer to replay; a key already stored keeps its first answer."""
        self._expire(now)
        self._entries.setdefault((namespace, key), _Entry(fingerprint, value, now))

    def clear(self) -> None:
        self._entries.clear()
