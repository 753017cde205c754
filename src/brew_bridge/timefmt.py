"""ISO-8601 times, one way: UTC with a ``Z``, as Brew writes them and as our output shows them.

Shared by the bridge and the simulators (a leaf module: it imports nothing of the bridge).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["iso_utc", "parse_iso"]


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
