"""A Redis stream entry as a :class:`SourceRecord`: pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from faststream.redis.parser.binary import BinaryMessageFormatV1

from brew_bridge.events import SourceRecord

__all__ = ["SOURCE", "redis_record"]

SOURCE = "redis"
# The field FastStream's publisher puts its envelope (body and headers) in.
_ENVELOPE: Final = b"__data__"


def redis_record(
    name: str,
    entry_id: bytes | str,
    fields: Mapping[bytes, bytes],
    *,
    value_field: str = "value",
    key_field: str | None = "key",
) -> SourceRecord:
    """A stream entry as a record of source ``name``.

    The position is the entry id; the timestamp is the id's milliseconds (when Redis
    added the entry). The value is ``value_field`` (empty when absent: the intake
    dead-letters it), the key ``key_field``, every other field a header. An entry a
    FastStream publisher wrote (its envelope field) gives its body and headers instead.
    """
    position = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, _ = position.partition("-")
    key: bytes | None
    if _ENVELOPE in fields:
        value, envelope_headers = BinaryMessageFormatV1.parse(fields[_ENVELOPE])
        headers = tuple((str(k), _text_bytes(v)) for k, v in envelope_headers.items())
        key = None
    else:
        value_name, key_name = value_field.encode(), key_field.encode() if key_field else None
        value = fields.get(value_name, b"")
        key = fields.get(key_name) if key_name is not None else None
        headers = tuple(
            (k.decode(errors="replace"), v)
            for k, v in fields.items()
            if k not in (value_name, key_name)
        )
    return SourceRecord(
        source=SOURCE,
        stream=name,
        position=position,
        key=key,
        value=value,
        headers=headers,
        timestamp_ms=int(millis) if millis.isdigit() else None,
    )


def _text_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
