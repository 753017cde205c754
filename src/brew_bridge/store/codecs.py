"""Row codecs: how values become SQLite columns and rows become the outbox's data. Pure.

:func:`prepare_rows` runs in the routing child too, so it takes plain data and returns
plain tuples (they cross a process boundary several times faster than dataclasses).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from brew_bridge import jsontext
from brew_bridge.events import Reason, Routed, SourceRecord
from brew_bridge.store.rows import DeadLetterRow, DeliveryRow, RunRecord

__all__ = [
    "PreparedRows",
    "dead_letter_from_row",
    "delivery_from_row",
    "dumps",
    "headers_from_json",
    "headers_to_json",
    "listed",
    "loads_obj",
    "prepare_rows",
    "record_from_row",
    "run_from_row",
    "unstorable_rows",
]


def dumps(value: Any) -> str:
    return jsontext.encode(value)


def loads_obj(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def headers_to_json(headers: tuple[tuple[str, bytes], ...]) -> str:
    if not headers:
        return "[]"
    return dumps([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, base64.b64decode(value)) for name, value in json.loads(text))


# What a routed record adds to the outbox, as plain values in the order of the INSERTs
# (the batch's time and the record's id are added when it is stored): the headers as
# JSON, the delivery rows, the ingest dead-letter rows, and whether it was dropped.
PreparedRows = tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]], bool]


def prepare_rows(routed: Iterable[Routed]) -> list[PreparedRows]:
    """The rows each routed record becomes. Pure, and never raising: a record whose
    values cannot be encoded becomes an ``unstorable`` dead letter. The routing child
    runs it too, and plain tuples cross a process boundary several times faster than
    the dataclasses."""
    out: list[PreparedRows] = []
    for item in routed:
        try:
            out.append(_rows(item))
        except Exception as exc:  # e.g. a value json cannot encode
            out.append(unstorable_rows(exc))
    return out


def _rows(item: Routed) -> PreparedRows:
    if not item.deliveries and not item.dead_letters:
        return ("", [], [], item.dropped)
    return (
        headers_to_json(item.record.headers),
        [
            (
                d.route,
                d.target,
                d.action,
                d.idempotency_key,
                dumps(d.payload),
                d.ordering_key,
                d.event_id,
            )
            for d in item.deliveries
        ],
        [
            (
                dl.stage,
                str(dl.reason),
                dl.code,
                dl.message,
                dl.route,
                dl.idempotency_key,
                None if dl.details is None else dumps(dl.details),
            )
            for dl in item.dead_letters
        ],
        item.dropped,
    )


def unstorable_rows(exc: BaseException) -> PreparedRows:
    """What a record becomes when its rows cannot be stored: only an ``unstorable``
    dead letter naming the error, and the record itself (bytes), so it can be redriven
    once the cause is fixed. Its headers are left out: they may be the cause."""
    # The message quotes the error, which may quote the bad value: kept encodable.
    text = f"the record cannot be stored: {type(exc).__name__}: {exc}"
    message = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return ("[]", [], [("ingest", str(Reason.UNSTORABLE), None, message, None, None, None)], False)


def record_from_row(row: sqlite3.Row) -> SourceRecord | None:
    if row["r_source"] is None:
        return None
    return SourceRecord(
        source=row["r_source"],
        stream=row["r_stream"],
        position=row["r_position"],
        key=row["r_key"],
        value=row["r_value"],
        headers=headers_from_json(row["r_headers"]),
        timestamp_ms=row["r_timestamp_ms"],
    )


def delivery_from_row(row: sqlite3.Row) -> DeliveryRow:
    return DeliveryRow(
        id=row["id"],
        route=row["route"],
        target=row["target"],
        action=row["action"],
        idempotency_key=row["idempotency_key"],
        payload=json.loads(row["payload"]),
        ordering_key=row["ordering_key"],
        event_id=row["event_id"],
        state=row["state"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        first_attempt_at=row["first_attempt_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=loads_obj(row["last_error"]),
        record=record_from_row(row),
    )


def dead_letter_from_row(row: sqlite3.Row) -> DeadLetterRow:
    return DeadLetterRow(
        id=row["id"],
        stage=row["stage"],
        reason=row["reason"],
        code=row["code"],
        message=row["message"],
        attempts=row["attempts"],
        route=row["route"],
        idempotency_key=row["idempotency_key"],
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        details=loads_obj(row["details"]),
        record=record_from_row(row),
        first_error_at=row["first_error_at"],
        last_error_at=row["last_error_at"],
        created_at=row["created_at"],
        redriven_at=row["redriven_at"],
        published_at=row["published_at"],
    )


def run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        delivery_id=row["delivery_id"],
        route=row["route"],
        target=row["target"],
        action=row["action"],
        idempotency_key=row["idempotency_key"],
        event_id=row["event_id"],
        status=row["status"],
        fired_at=row["fired_at"],
        last_checked_at=row["last_checked_at"],
        ref=row["ref"],
    )


def listed(logs: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if logs is None else [dict(entry) for entry in logs]
