"""A saved webhook delivery: what ``brew-bridge map --webhook`` and the samples read.

The format is the HTTP request as a provider's dashboard or ``curl -v`` shows it: an
optional request line (``POST /webhooks/stripe HTTP/1.1``), ``Name: value`` header
lines, an empty line, then the body byte for byte::

    POST /webhooks/stripe HTTP/1.1
    Content-Type: application/json

    {"id": "evt_1", "type": "customer.created", ...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SavedDelivery", "parse_saved_delivery"]

_REQUEST_LINE = re.compile(rb"^[A-Z]+ /webhooks/([^/\s?]+)\S* HTTP/\d(\.\d)?$")


@dataclass(frozen=True)
class SavedDelivery:
    source: str | None  # from the request line, when there is one
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_saved_delivery(data: bytes) -> SavedDelivery:
    """Parse a saved delivery; raises ValueError saying which line is wrong."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if not sep:
        raise ValueError("no empty line between the headers and the body")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    source = None
    match = _REQUEST_LINE.match(lines[0])
    if match is not None:
        source = match.group(1).decode("utf-8", "replace")
        lines = lines[1:]
    headers = []
    for number, line in enumerate(lines, start=2 if match else 1):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise ValueError(f"line {number} is not 'Name: value': {line[:60]!r}")
        headers.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return SavedDelivery(source, tuple(headers), body)
