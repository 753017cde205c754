"""`brew-bridge dlq redrive` of fire and run dead letters on real outbox files, and the
pure key derivation. (Ingest redrive, which needs a config, is in test_dlq_reroute.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from dlq_support import ROUTE, Filled, fire_dead_letter, run_dead_letters, store_delivery

from brew_bridge.cli import main
from brew_bridge.core.redrive import plan_redrive, redrive_key
from brew_bridge.events import Reason
from brew_bridge.mapping.keys import MAX_KEY_LENGTH
from brew_bridge.store import Outbox


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dump(path: Path) -> list[str]:
    """Every row of every table: what "changes nothing" is checked against."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def test_redrive_key_counts_up_deterministically() -> None:
    assert redrive_key("welcome:e1") == "welcome:e1:redrive-1"
    assert redrive_key("welcome:e1:redrive-1") == "welcome:e1:redrive-2"
    assert redrive_key("welcome:e1:redrive-9") == "welcome:e1:redrive-10"
    assert redrive_key("welcome:e1") == redrive_key("welcome:e1")


def test_redrive_key_stays_within_brews_limit() -> None:
    long = "welcome:" + "x" * 90
    key = redrive_key(long)
    assert len(key) <= MAX_KEY_LENGTH
    assert key.startswith("welcome:")
    assert key == redrive_key(long)
    assert key != long
    assert redrive_key(key) not in {key, long}


def test_fire_dead_letter_redrive_keeps_the_original_key(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "dlq", "redrive", str(filled.fire_dl), "--outbox", str(filled.path))
    assert code == 0
    assert "1 redriven, 0 skipped" in out
    assert "key=welcome:e1" in out
    outbox = Outbox.open(filled.path)
    try:
        delivery = outbox.delivery(filled.fire_delivery)
        assert delivery is not None
        assert (delivery.state, delivery.idempotency_key, delivery.attempts) == (
            "pending",
            "welcome:e1",
            0,
        )
        dl = outbox.dead_letter(filled.fire_dl)
        assert dl is not None
        assert dl.redriven_at is not None
        # The next claim fires it again, with the key it was first fired with.
        claimed = outbox.claim_due(dl.redriven_at + 1, 10, ordered=False)
        assert [(c.id, c.idempotency_key) for c in claimed if c.id == filled.fire_delivery] == [
            (filled.fire_delivery, "welcome:e1")
        ]
    finally:
        outbox.close()


def test_run_dead_letters_of_one_fire_requeue_it_once(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "dlq", "redrive", "--reason", "run_failed", "--outbox", str(filled.path)
    )
    assert code == 0
    assert "2 redriven, 0 skipped" in out
    assert f"same fire as dead letter #{filled.run_dls[0]}" in out
    assert "replays the original fire" in out  # the operator learns about --new-key
    outbox = Outbox.open(filled.path)
    try:
        delivery = outbox.delivery(filled.run_delivery)
        assert delivery is not None
        assert (delivery.state, delivery.idempotency_key) == ("pending", "welcome:e2")
        assert all(outbox.dead_letter(i).redriven_at is not None for i in filled.run_dls)
        # Only the selected reason was touched.
        assert outbox.dead_letter(filled.fire_dl).redriven_at is None
    finally:
        outbox.close()


def test_new_key_queues_a_new_delivery_and_counts_up(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = Outbox.open(outbox_path)
    try:
        delivery_id, [dl_id] = run_dead_letters(outbox, 1, "welcome:e1", ("run_a",))
    finally:
        outbox.close()
    where = ("--outbox", str(outbox_path))
    # A run's trigger fired again runs every automation of it: only when forced.
    code, out, _ = run(capsys, "dlq", "redrive", str(dl_id), "--new-key", "--force", *where)
    assert code == 0
    assert "key=welcome:e1:redrive-1" in out

    outbox = Outbox.open(outbox_path)
    try:
        old = outbox.delivery(delivery_id)
        assert old is not None
        assert (old.state, old.idempotency_key) == ("fired", "welcome:e1")  # history kept
        [new] = outbox.claim_due(2e9, 10, ordered=False)
        assert new.id != delivery_id
        assert (new.route, new.idempotency_key, new.payload) == (
            ROUTE,
            "welcome:e1:redrive-1",
            old.payload,
        )
        # That run fails too: its dead letter redrives to the next key.
        outbox.mark_fired(new.id, instance_id="tin_2", run_ids=["run_b"], code="TRIGGERED", now=2e9)
        second = outbox.finish_run("run_b", status="failed", now=2e9 + 1, error="again")
        assert second is not None
    finally:
        outbox.close()
    code, out, _ = run(capsys, "dlq", "redrive", str(second), "--new-key", "--force", *where)
    assert "key=welcome:e1:redrive-2" in out

    # Redriving the first one again (forced) derives the same key as before: nothing new.
    code, out, _ = run(capsys, "dlq", "redrive", str(dl_id), "--new-key", "--force", *where)
    assert code == 0
    assert "key=welcome:e1:redrive-1" in out
    assert "is already fired" in out
    outbox = Outbox.open(outbox_path)
    try:
        assert outbox.stats(2e9).deliveries["pending"] == 1  # only redrive-2
    finally:
        outbox.close()


def test_new_key_refuses_what_could_send_again_unless_forced(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed run's trigger fired again runs every automation of it, the completed ones
    too; a fire whose attempts got no clear answer may have been accepted already."""
    outbox = Outbox.open(outbox_path)
    try:
        _, [failed] = run_dead_letters(outbox, 1, "welcome:e1", ("run_a",))
        store_delivery(outbox, 2, "welcome:e2")
        [row] = outbox.claim_due(2e9, 1, ordered=False)
        exhausted = outbox.mark_dead(
            row.id,
            reason=Reason.RETRIES_EXHAUSTED,
            code="UNKNOWN_OUTCOME",
            message="gave up after 10 attempts: no answer",
            error={"status": None, "code": "UNKNOWN_OUTCOME"},
            now=2e9,
        )
    finally:
        outbox.close()
    before = dump(outbox_path)
    where = ("--outbox", str(outbox_path))
    code, out, _ = run(capsys, "dlq", "redrive", str(failed), str(exhausted), "--new-key", *where)
    assert code == 0
    assert "every published automation of it runs again" in out
    assert "this fire started 1 failed" in out
    assert "a new key would send it twice" in out
    assert "0 redriven, 2 skipped (1 may_send_twice, 1 reruns_every_automation)" in out
    assert dump(outbox_path) == before  # nothing queued
    # Without --new-key the original key goes again, which the target replays.
    code, out, _ = run(capsys, "dlq", "redrive", str(exhausted), *where)
    assert "1 redriven, 0 skipped" in out


def test_dry_run_changes_nothing(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    before = dump(filled.path)
    code, out, _ = run(
        capsys,
        "dlq",
        "redrive",
        "--since",
        "2020-01-01",
        "--new-key",
        "--force",
        "--dry-run",
        "--outbox",
        str(filled.path),
    )
    assert code == 0
    assert "key=welcome:e1:redrive-1" in out
    # The ingest dead letter needs the routes of a config to be re-routed.
    assert "3 would redrive, 1 skipped (1 needs_config)" in out
    assert "[dry run: nothing changed]" in out
    assert dump(filled.path) == before


def test_already_redriven_is_skipped_unless_forced(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--outbox", str(filled.path))
    run(capsys, "dlq", "redrive", str(filled.fire_dl), *where)
    _, out, _ = run(capsys, "dlq", "redrive", str(filled.fire_dl), *where)
    assert "0 redriven, 1 skipped (1 already_redriven)" in out
    assert "--force" in out
    outbox = Outbox.open(filled.path)
    try:
        # Fired again and failed again: --force puts it back once more.
        outbox.claim_due(2e9, 10, ordered=False)
        outbox.mark_dead(
            filled.fire_delivery,
            reason=Reason.FIRE_REJECTED,
            code="INVALID_REQUEST",
            message="still bad",
            error=None,
            now=2e9,
        )
    finally:
        outbox.close()
    _, out, _ = run(capsys, "dlq", "redrive", str(filled.fire_dl), "--force", *where)
    assert "1 redriven, 0 skipped" in out
    outbox = Outbox.open(filled.path)
    try:
        assert outbox.delivery(filled.fire_delivery).state == "pending"
    finally:
        outbox.close()


def test_redrive_needs_a_selection_and_known_ids(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--outbox", str(filled.path))
    before = dump(filled.path)
    code, _, err = run(capsys, "dlq", "redrive", *where)
    assert code == 1
    assert "say what to redrive" in err
    code, _, err = run(capsys, "dlq", "redrive", "1", "--reason", "run_failed", *where)
    assert code == 1
    assert "not both" in err
    code, _, err = run(capsys, "dlq", "redrive", str(filled.fire_dl), "999", *where)
    assert code == 1
    assert "no dead letter with id 999" in err
    assert dump(filled.path) == before  # an unknown id stops the whole command first


def test_plan_is_pure_and_ordered_oldest_first(outbox_path: Path) -> None:
    outbox = Outbox.open(outbox_path)
    try:
        _, first = fire_dead_letter(outbox, 1, "welcome:e1")
        _, second = fire_dead_letter(outbox, 2, "welcome:e2")
        rows = outbox.dead_letters()  # newest first
    finally:
        outbox.close()
    steps = plan_redrive(rows, routes=None)
    assert [s.dead_letter_id for s in steps] == [first, second]
    assert [s.action for s in steps] == ["requeue", "requeue"]
    assert [s.keys for s in steps] == [("welcome:e1",), ("welcome:e2",)]


def test_an_unknown_outcome_is_not_redriven_without_force(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """outcome_unknown: the target forgot the key (a late fire) or takes none (Pinkfish),
    so even the same key may start the work again."""
    outbox = Outbox.open(outbox_path)
    try:
        store_delivery(outbox, 1, "research:e1")
        [row] = outbox.claim_due(2e9, 1, ordered=False)
        unknown = outbox.mark_dead(
            row.id,
            reason=Reason.OUTCOME_UNKNOWN,
            code="OUTCOME_UNKNOWN",
            message="no answer, and Pinkfish takes no Idempotency-Key",
            error={"status": None, "code": "OUTCOME_UNKNOWN"},
            now=2e9,
        )
    finally:
        outbox.close()
    before = dump(outbox_path)
    where = ("--outbox", str(outbox_path))
    for extra in ((), ("--new-key",)):
        code, out, _ = run(capsys, "dlq", "redrive", str(unknown), *extra, *where)
        assert code == 0
        assert "cannot tell whether it acted on it" in out
        assert "0 redriven, 1 skipped (1 outcome_unknown)" in out
        assert dump(outbox_path) == before
    code, out, _ = run(capsys, "dlq", "redrive", str(unknown), "--force", *where)
    assert "1 redriven, 0 skipped" in out
