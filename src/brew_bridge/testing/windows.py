"""Counting requests in sliding windows: what a rate limit or a concurrency bound means,
checked from a server's request log (the benchmarks and the tests)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["most_in_window"]


def most_in_window(times: Iterable[float], window: float) -> int:
    """The most ``times`` in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most
