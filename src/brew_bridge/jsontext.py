"""JSON on the hot path: msgspec where it gives the stdlib's answer, the stdlib otherwise.

Every event is decoded once and every delivery's payload encoded once, so on ~1 KB
events the stdlib ``json`` was a fifth of the ingest CPU. msgspec decodes such an
event in ~1.8 us against ~5.9 and encodes a payload in ~1.2 us against ~7.8
(``bench/ingest.py`` has the end-to-end figures). It was chosen over orjson because it
decodes integers past 64 bits exactly (orjson turns them into floats: an order number
would silently change).

Only what msgspec accepts goes through it, and for that input it answers as ``json``
does: the same values, dict order, duplicate keys (the last wins). What it refuses
(a lone surrogate escape, ``1e400``, a BOM, bad UTF-8, deep nesting, malformed text)
it says so with :class:`Refused`, and the caller asks the stdlib: a bad event gets
exactly the stdlib's error, or the stdlib's value where the stdlib is more lenient.

Encoding is compact and UTF-8 (``ensure_ascii=False``), as the stdlib encoder was
configured. The values encoded are JSON data (decoded events, mapped and converted
fields); a value msgspec has no encoding for is written as ``str(value)``, as the
stdlib's ``default=str`` did, and a string msgspec cannot encode (a lone surrogate) goes
to the stdlib, which keeps it for the store to refuse with its own error.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

__all__ = ["Refused", "decode", "encode"]

_DECODER: Final = msgspec.json.Decoder()
_ENCODER: Final = msgspec.json.Encoder(enc_hook=str)
_STDLIB_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class Refused(ValueError):
    """msgspec does not take this text: decode it with the stdlib, for its answer."""


def decode(data: bytes | str) -> Any:
    """``data`` as JSON, or :class:`Refused` (never another error)."""
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # bad UTF-8, nesting
        raise Refused(str(exc)) from None


def encode(value: Any) -> str:
    """``value`` as compact UTF-8 JSON text."""
    try:
        return _ENCODER.encode(value).decode("utf-8")
    except (UnicodeEncodeError, OverflowError, TypeError):
        return _STDLIB_ENCODER.encode(value)
