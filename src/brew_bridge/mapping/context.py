"""The record context that paths, templates and keys read: the decoded event and where
it came from.

The context's names are :data:`~brew_bridge.mapping.expressions.CONTEXT_ROOTS` (plus
``route``, added per route): ``event``, ``headers``, ``key``, ``stream``, ``position``
and the older ``topic``, ``partition``, ``offset``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from .. import jsontext
from ..events import SourceRecord, numbered_position

__all__ = ["decode_event", "record_context"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads(text, parse_constant=...) builds a decoder per call (~1.7 us of
# ~6 per event). Decoding keeps no state between calls.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def decode_event(value: bytes) -> dict[str, Any] | str:
    """The record value as a JSON object, or the reason it is not one."""
    try:
        return _object(jsontext.decode(value))
    except jsontext.Refused:
        return _decode_stdlib(value)


def _decode_stdlib(value: bytes) -> dict[str, Any] | str:
    # What msgspec refuses: the stdlib decides, and words the reason.
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"value is not UTF-8 text (bad byte at offset {exc.start})"
    try:
        # json.loads refuses a leading BOM (its own message) before it decodes.
        event = json.loads(text) if text.startswith("\ufeff") else _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return f"value is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return f"value is not usable JSON: {exc}"
    return _object(event)


def _object(event: Any) -> dict[str, Any] | str:
    if not isinstance(event, dict):
        kind = "array" if isinstance(event, list) else type(event).__name__
        if event is None:
            kind = "null"
        return f"value is a JSON {kind}, not an object"
    return event


def record_context(record: SourceRecord, event: Any) -> dict[str, Any]:
    """The context paths and templates read, without ``route`` (added per route).

    Header names are lower-cased (the last of a repeated name wins); header values and
    the record key are decoded as UTF-8, undecodable bytes replaced.
    """
    numbered = numbered_position(record.position)
    return {
        "event": event,
        "headers": {
            name.lower(): value.decode("utf-8", "replace") for name, value in record.headers
        },
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "stream": record.stream,
        "position": record.position,
        # The names templates used before streams had positions: the stream is the topic,
        # and a partitioned log's position is partition:offset.
        "topic": record.stream,
        "partition": numbered[0] if numbered else None,
        "offset": numbered[1] if numbered else None,
    }
