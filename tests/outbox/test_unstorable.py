"""A record the outbox cannot hold never takes its batch down (invariant 5).

JavaScript writes a string cut mid-emoji as a lone surrogate (``"Ada \\ud83d"``); JSON
decodes it, but SQLite cannot bind it as UTF-8 text. Such a record becomes one
``unstorable`` dead letter (its bytes kept, for a redrive once the cause is fixed) and
every other record of the batch is stored as usual.
"""

from __future__ import annotations

import sqlite_utils

from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.store import Outbox

NOW = 1_700_000_000.0
LONE = "Ada \ud83d"


def routed(offset: int, *, name: str = "Ada", route: str = "welcome") -> Routed:
    record = SourceRecord("kafka", "signups", f"0:{offset}", b"k", b'{"id": "e%d"}' % offset)
    delivery = NewDelivery(
        route, "brew", "tri_welcome", f"{route}:e{offset}", {"email": "a@example.com", "n": name}
    )
    return Routed(record=record, deliveries=(delivery,))


def test_one_poison_record_among_forty_is_dead_lettered_and_the_rest_stored(
    outbox: Outbox,
) -> None:
    batch = (
        [routed(i) for i in range(20)]
        + [routed(20, name=LONE)]
        + [routed(i) for i in range(21, 41)]
    )
    result = outbox.store_batch(batch, NOW)
    assert (result.records, result.inserted, result.dead_letters) == (41, 40, 1)
    assert result.dead_letters_by_reason == {("", "unstorable"): 1}
    [dl] = outbox.dead_letters()
    assert (dl.stage, dl.reason, dl.route) == ("ingest", Reason.UNSTORABLE, None)
    assert "UnicodeEncodeError" in dl.message
    assert dl.record is not None
    assert dl.record.position == "0:20"
    assert dl.record.value == b'{"id": "e20"}'
    assert outbox.backlog() == 40


def test_a_poison_dead_letter_message_is_unstorable_too(outbox: Outbox) -> None:
    record = SourceRecord("kafka", "signups", "0:1", None, b"{}")
    bad = NewDeadLetter(stage="ingest", reason=Reason.MAPPING_ERROR, message=f"bad {LONE}")
    result = outbox.store_batch([routed(0), Routed(record=record, dead_letters=(bad,))], NOW)
    assert (result.inserted, result.dead_letters) == (1, 1)
    assert [dl.reason for dl in outbox.dead_letters()] == [Reason.UNSTORABLE]


def test_a_replayed_poison_batch_doubles_nothing(outbox: Outbox) -> None:
    batch = [routed(1), routed(2, name=LONE), routed(3)]
    outbox.store_batch(batch, NOW)
    again = outbox.store_batch(batch, NOW + 1)
    assert (again.inserted, again.duplicates, again.dead_letters) == (0, 2, 0)
    assert again.dead_letter_duplicates == 1
    db = sqlite_utils.Database(outbox.path)
    assert db["records"].count == 3
    assert db["dead_letters"].count == 1
