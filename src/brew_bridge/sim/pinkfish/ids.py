"""The ids Pinkfish hands out, shaped like the seed document's.

* a run id is the trigger time in epoch nanoseconds, 19 decimal digits
  (``1778786207851669420`` is 2026-05-14T19:16:47.85Z, the ``started`` of the example
  results): strictly increasing here, so two fires in one nanosecond still differ;
* an automation id is an `xid <https://github.com/rs/xid>`_: 12 bytes in lowercase
  base32hex, 20 characters (``d831ue4rccbc73knbi80``); derived from the trigger id, so a
  seed without one gets the same id on every start;
* a request id (our ``x-request-id``; the document shows none) is 32 lowercase hex.
"""

from __future__ import annotations

import base64
import hashlib
import os

__all__ = ["RunIds", "automation_id_for", "request_id", "xid"]


def xid(raw: bytes) -> str:
    """12 bytes as an xid: base32hex, lowercase, unpadded (20 characters)."""
    if len(raw) != 12:
        raise ValueError("an xid is 12 bytes")
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


def automation_id_for(trigger_id: str) -> str:
    """The automation id of a trigger whose seed names none: stable, xid-shaped."""
    return xid(hashlib.sha256(trigger_id.encode()).digest()[:12])


def request_id() -> str:
    return os.urandom(16).hex()


class RunIds:
    """Run ids from the fire time: epoch nanoseconds, never the same twice."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, now: float) -> str:
        self._last = max(int(now * 1e9), self._last + 1)
        return str(self._last)
