"""ISO-8601 times, one way: UTC with a ``Z``, as Brew writes them and as our output shows them;
and ages for people (``1h 2m``), the same in the CLI and on the status page.

Shared by the bridge and the simulators (a leaf module: it imports nothing of the bridge).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Literal

__all__ = ["format_duration", "iso_utc", "parse_iso"]


def iso_utc(ts: float, *, timespec: Literal["seconds", "milliseconds"] = "milliseconds") -> str:
    """Epoch seconds as ``2026-04-08T12:34:56.789Z`` (or ``…T12:34:56Z`` to the second)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    """An ISO-8601 time as epoch seconds (no offset means UTC); None when absent or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# Largest first, in seconds.
_SHOWN_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1h 2m``: the largest unit and the one below it (left out when 0, so
    ``1d 15m`` can never be misread as "about a day and a quarter hour"), for people
    reading at 3 a.m. (the CLI, the status page)."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    remaining = int(seconds)
    # 60 s or more: minutes at least qualify.
    (unit, size), (next_unit, next_size) = next(
        pair for pair in itertools.pairwise(_SHOWN_UNITS) if remaining >= pair[0][1]
    )
    below = remaining % size // next_size
    return f"{remaining // size}{unit}" + (f" {below}{next_unit}" if below else "")
