"""Builders for real outbox files holding dead letters of every stage, via the outbox's own API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.store import Outbox

NOW = 1_700_000_000.0
ROUTE = "welcome"
TRIGGER = "tri_welcome"


@dataclass
class Filled:
    """An outbox file holding dead letters of every stage, and their ids."""

    path: Path
    fire_delivery: int
    fire_dl: int
    run_delivery: int
    run_dls: list[int]
    binary_dl: int


def source_record(offset: int, value: bytes, *, key: bytes | None = b"user-1") -> SourceRecord:
    return SourceRecord(
        source="kafka",
        stream="signups",
        position=f"0:{offset}",
        key=key,
        value=value,
        headers=(("trace", b"abc"),),
        timestamp_ms=1_699_999_999_000,
    )


def store_delivery(outbox: Outbox, offset: int, key: str, *, now: float = NOW) -> SourceRecord:
    record = source_record(offset, b'{"id": "e%d", "email": "a@example.com"}' % offset)
    delivery = NewDelivery(
        route=ROUTE,
        target="brew",
        action=TRIGGER,
        idempotency_key=key,
        payload={"email": "a@example.com"},
        ordering_key="a@example.com",
        event_id=f"e{offset}",
    )
    outbox.store_batch([Routed(record=record, deliveries=(delivery,))], now)
    return record


def fire_dead_letter(outbox: Outbox, offset: int, key: str, *, now: float = NOW) -> tuple[int, int]:
    """A delivery Brew refused for good: (delivery id, dead letter id)."""
    store_delivery(outbox, offset, key, now=now)
    [row] = outbox.claim_due(now, 1, ordered=False)
    dl_id = outbox.mark_dead(
        row.id,
        reason=Reason.FIRE_REJECTED,
        code="INVALID_REQUEST",
        message="Field email must be a string " + "x" * 100,
        error={"status": 400, "code": "INVALID_REQUEST", "requestId": "req_1"},
        now=now + 1,
    )
    return row.id, dl_id


def run_dead_letters(
    outbox: Outbox, offset: int, key: str, run_ids: tuple[str, ...], *, now: float = NOW
) -> tuple[int, list[int]]:
    """A fire whose runs all failed: (delivery id, one dead letter id per run)."""
    store_delivery(outbox, offset, key, now=now)
    [row] = outbox.claim_due(now, 1, ordered=False)
    outbox.mark_fired(row.id, instance_id="tin_1", run_ids=run_ids, code="TRIGGERED", now=now + 1)
    ids = []
    for run_id in run_ids:
        dl_id = outbox.finish_run(
            run_id,
            status="failed",
            now=now + 5,
            error="send_email: mailbox unavailable",
            logs=[{"node": "send_email", "level": "error", "message": "mailbox unavailable"}],
        )
        assert dl_id is not None
        ids.append(dl_id)
    return row.id, ids


def ingest_dead_letter(
    outbox: Outbox, offset: int, value: bytes, reason: Reason, *, now: float = NOW
) -> int:
    """A record routing refused (stored the way routing hands it over)."""
    record = source_record(offset, value)
    dead = NewDeadLetter(stage="ingest", reason=reason, message=f"{reason}: refused", route=None)
    outbox.store_batch([Routed(record=record, dead_letters=(dead,))], now)
    [dl] = [d for d in outbox.dead_letters(limit=1000) if d.record == record]
    return dl.id
