"""The outbox on real SQLite files: schema, ingest, the delivery state machine, runs,
dead letters and redrive. Files are inspected with sqlite-utils, so no SQL lives here."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
import sqlite_utils

from brew_bridge.errors import StoreError
from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.store import SCHEMA_VERSION, FiredMark, Outbox

NOW = 1_700_000_000.0


def record(offset: int, *, topic: str = "orders", partition: int = 0) -> SourceRecord:
    return SourceRecord(
        source="kafka",
        stream=topic,
        position=f"{partition}:{offset}",
        key=b"k-%d" % offset,
        value=b'{"id": "evt_%d", "bin": "\xff"}' % offset,
        headers=(("type", b"orders/create"), ("raw", b"\x00\xfe")),
        timestamp_ms=1_700_000_000_000 + offset,
    )


def delivery(
    key: str, *, route: str = "order_confirmation", ordering_key: str | None = None
) -> NewDelivery:
    return NewDelivery(
        route=route,
        target="brew",
        action="tri_order",
        idempotency_key=key,
        payload={"email": "a@example.com", "total": "12.50", "name": "Zoë"},
        ordering_key=ordering_key,
        event_id=key,
    )


def routed(offset: int, *deliveries: NewDelivery, **kw: object) -> Routed:
    return Routed(record=record(offset), deliveries=deliveries, **kw)  # type: ignore[arg-type]


def dead(reason: Reason, route: str | None = None) -> NewDeadLetter:
    return NewDeadLetter(
        stage="ingest", reason=reason, message=f"{reason} happened", route=route, details={"x": 1}
    )


def db(path: Path) -> sqlite_utils.Database:
    return sqlite_utils.Database(path)


# -- opening and schema -------------------------------------------------------------------


def test_open_sets_wal_full_and_schema_version(path: Path) -> None:
    with Outbox.open(path) as box:
        assert box.schema_version == SCHEMA_VERSION
        conn = box._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert set(db(path).table_names()) >= {"records", "deliveries", "runs", "dead_letters"}


def test_synchronous_normal_is_honoured(path: Path) -> None:
    with Outbox.open(path, synchronous="normal") as box:
        assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_reopening_is_idempotent_and_keeps_rows(path: Path) -> None:
    with Outbox.open(path) as box:
        box.store_batch([routed(1, delivery("k1"))], NOW)
    with Outbox.open(path) as box:
        assert box.schema_version == SCHEMA_VERSION
        assert box.backlog() == 1


def test_newer_schema_is_refused_with_a_fix(path: Path) -> None:
    Outbox.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=r"newer than this brew-bridge knows.*upgrade"):
        Outbox.open(path)


def test_bad_synchronous_and_missing_directory_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"outbox.synchronous.*use FULL"):
        Outbox.open(tmp_path / "x.db", synchronous="OFF")
    with pytest.raises(StoreError, match=r"outbox.path.*does not exist"):
        Outbox.open(tmp_path / "nope" / "x.db")


def test_trace_sees_every_statement(path: Path) -> None:
    seen: list[str] = []
    with Outbox.open(path, trace=seen.append) as box:
        seen.clear()
        box.store_batch([routed(1, delivery("k1"))], NOW)
    assert seen[0] == "BEGIN IMMEDIATE"
    assert seen[-1] == "COMMIT"


# -- ingest ---------------------------------------------------------------------------------


def test_store_batch_keeps_the_record_byte_for_byte(outbox: Outbox, path: Path) -> None:
    result = outbox.store_batch([routed(7, delivery("k7"))], NOW)
    assert (result.inserted, result.duplicates, result.records) == (1, 0, 1)
    [row] = outbox.claim_due(NOW, 10)
    assert row.record == record(7)
    assert row.payload == {"email": "a@example.com", "total": "12.50", "name": "Zoë"}
    assert (row.route, row.idempotency_key, row.event_id) == ("order_confirmation", "k7", "k7")
    assert row.created_at == NOW


def test_duplicates_die_in_the_outbox(outbox: Outbox, path: Path) -> None:
    first = outbox.store_batch([routed(1, delivery("k1")), routed(2, delivery("k1"))], NOW)
    assert (first.inserted, first.duplicates) == (1, 1)
    # The same event re-published (new offset) and the same record replayed after a crash.
    again = outbox.store_batch([routed(3, delivery("k1")), routed(1, delivery("k1"))], NOW)
    assert (again.inserted, again.duplicates, again.records) == (0, 2, 1)
    assert again.duplicates_by_route == {"order_confirmation": 2}
    assert db(path)["deliveries"].count == 1
    assert db(path)["records"].count == 3


def test_one_event_feeding_two_routes_gets_two_rows(outbox: Outbox) -> None:
    result = outbox.store_batch(
        [routed(1, delivery("receipt:e1", route="receipt"), delivery("crm:e1", route="crm"))],
        NOW,
    )
    assert result.inserted_by_route == {"receipt": 1, "crm": 1}
    assert outbox.backlog() == 2


def test_ingest_dead_letters_are_stored_once_per_record_route_reason(
    outbox: Outbox, path: Path
) -> None:
    batch = [
        Routed(record=record(1), dead_letters=(dead(Reason.INVALID_JSON),)),
        Routed(
            record=record(2),
            deliveries=(delivery("ok:2", route="crm"),),
            dead_letters=(dead(Reason.PAYLOAD_INVALID, "receipt"),),
        ),
    ]
    first = outbox.store_batch(batch, NOW)
    assert (first.dead_letters, first.inserted) == (2, 1)
    assert first.dead_letters_by_reason == {
        ("", "invalid_json"): 1,
        ("receipt", "payload_invalid"): 1,
    }
    replay = outbox.store_batch(batch, NOW + 5)  # the batch again after a crash
    assert (replay.dead_letters, replay.dead_letter_duplicates, replay.duplicates) == (0, 2, 1)
    assert db(path)["dead_letters"].count == 2
    [invalid] = outbox.dead_letters(reason="invalid_json")
    assert invalid.stage == "ingest"
    assert invalid.record == record(1)
    assert invalid.details == {"x": 1}
    assert invalid.message == "invalid_json happened"


def test_dropped_records_are_counted_not_stored(outbox: Outbox, path: Path) -> None:
    result = outbox.store_batch([Routed(record=record(1), dropped=True)], NOW)
    assert (result.dropped, result.records) == (1, 0)
    assert db(path)["records"].count == 0


def test_a_failing_batch_stores_nothing(outbox: Outbox, path: Path) -> None:
    bad = NewDeadLetter(stage="bogus", reason=Reason.NO_ROUTE, message="m")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="CHECK constraint"):
        outbox.store_batch(
            [routed(1, delivery("k1")), Routed(record=record(2), dead_letters=(bad,))], NOW
        )
    assert db(path)["records"].count == 0
    assert db(path)["deliveries"].count == 0
    # The connection is usable afterwards.
    assert outbox.store_batch([routed(1, delivery("k1"))], NOW).inserted == 1


def test_a_staged_batch_is_durable_only_once_committed_from_any_thread(
    outbox: Outbox, path: Path
) -> None:
    staged = outbox.stage_batch([routed(1, delivery("k1")), routed(2, delivery("k2"))], NOW)
    assert staged.result.inserted == 2
    assert db(path)["deliveries"].count == 0  # another reader sees nothing yet
    # The outbox stays locked until the commit: a second writer waits for it.
    second = threading.Thread(
        target=outbox.store_batch, args=([routed(3, delivery("k3"))], NOW), daemon=True
    )
    second.start()
    second.join(timeout=0.2)
    assert second.is_alive()
    committer = threading.Thread(target=staged.commit)
    committer.start()
    committer.join(timeout=10)
    second.join(timeout=10)
    assert not second.is_alive()
    assert sorted(r["idempotency_key"] for r in db(path)["deliveries"].rows) == ["k1", "k2", "k3"]


def test_empty_batch_is_fine(outbox: Outbox) -> None:
    assert outbox.store_batch([], NOW).inserted == 0


# -- dispatcher -----------------------------------------------------------------------------


def test_claim_due_takes_oldest_first_and_sets_firing(outbox: Outbox) -> None:
    outbox.store_batch([routed(i, delivery(f"k{i}")) for i in range(5)], NOW)
    first = outbox.claim_due(NOW, 2)
    assert [d.idempotency_key for d in first] == ["k0", "k1"]
    assert {d.state for d in first} == {"firing"}
    assert first[0].first_attempt_at == NOW
    assert [d.idempotency_key for d in outbox.claim_due(NOW, 10)] == ["k2", "k3", "k4"]
    assert outbox.claim_due(NOW, 10) == []
    assert outbox.backlog() == 5  # firing still counts
    assert outbox.claim_due(NOW, 0) == []


def test_claim_due_waits_for_next_attempt_at(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    assert outbox.claim_due(NOW - 1, 10) == []
    [row] = outbox.claim_due(NOW, 10)
    outbox.mark_retry(row.id, next_attempt_at=NOW + 30, error={"code": "HTTP_500"}, now=NOW)
    assert outbox.claim_due(NOW + 29, 10) == []
    [again] = outbox.claim_due(NOW + 30, 10)
    assert (again.attempts, again.last_error, again.first_attempt_at) == (
        1,
        {"code": "HTTP_500"},
        NOW,
    )


def test_ordered_claim_keeps_one_keys_events_in_order(outbox: Outbox) -> None:
    outbox.store_batch(
        [
            routed(1, delivery("a1", ordering_key="alice")),
            routed(2, delivery("a2", ordering_key="alice")),
            routed(3, delivery("b1", ordering_key="bob")),
            routed(4, delivery("n1")),
        ],
        NOW,
    )
    assert [d.idempotency_key for d in outbox.claim_due(NOW, 10)] == ["a1", "b1", "n1"]
    # a1 is firing: a2 waits.
    assert outbox.claim_due(NOW, 10) == []
    [a1] = [d for d in outbox.claim_due(NOW, 10, ordered=False)]
    assert a1.idempotency_key == "a2"


def test_a_waiting_row_holds_back_only_its_own_route_unless_ordering_is_global(
    outbox: Outbox,
) -> None:
    """A welcome mail stuck on a 422 must not hold back the same person's receipt."""
    outbox.store_batch(
        [
            routed(1, delivery("w1", route="welcome", ordering_key="ada@example.com")),
            routed(2, delivery("w2", route="welcome", ordering_key="ada@example.com")),
            routed(3, delivery("r1", route="receipt", ordering_key="ada@example.com")),
        ],
        NOW,
    )
    [w1, r1] = outbox.claim_due(NOW, 10)
    assert (w1.idempotency_key, r1.idempotency_key) == ("w1", "r1")
    outbox.mark_retry(w1.id, next_attempt_at=NOW + 3600, error={"code": "X"}, now=NOW)
    outbox.release(r1.id)
    # Global: one queue per key across routes, so nothing else may go.
    assert outbox.claim_due(NOW + 1, 10, per_route=False) == []
    # Per route (the default): the receipt goes, the welcome route's next row waits.
    assert [d.idempotency_key for d in outbox.claim_due(NOW + 1, 10)] == ["r1"]


def test_ordered_claim_waits_for_a_retrying_predecessor(outbox: Outbox) -> None:
    outbox.store_batch(
        [
            routed(1, delivery("a1", ordering_key="alice")),
            routed(2, delivery("a2", ordering_key="alice")),
        ],
        NOW,
    )
    [a1] = outbox.claim_due(NOW, 10)
    outbox.mark_retry(a1.id, next_attempt_at=NOW + 60, error={}, now=NOW)
    assert outbox.claim_due(NOW + 1, 10) == []
    outbox.mark_fired(
        outbox.claim_due(NOW + 60, 10)[0].id,
        instance_id="ti",
        run_ids=[],
        code="TRIGGERED",
        now=NOW + 60,
    )
    assert [d.idempotency_key for d in outbox.claim_due(NOW + 60, 10)] == ["a2"]


def test_mark_fired_records_runs(outbox: Outbox, path: Path) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_fired(
        row.id,
        instance_id="ti_1",
        run_ids=["run_1", "run_2"],
        code="TRIGGERED",
        now=NOW + 1,
    )
    fired = db(path)["deliveries"].get(row.id)
    assert (fired["state"], fired["attempts"], fired["instance_id"]) == ("fired", 1, "ti_1")
    assert (fired["result_code"], fired["fired_at"]) == ("TRIGGERED", NOW + 1)
    runs = outbox.live_runs()
    assert [r.run_id for r in runs] == ["run_1", "run_2"]
    assert runs[0].route == "order_confirmation"
    assert runs[0].idempotency_key == "k1"
    assert (runs[0].status, runs[0].fired_at, runs[0].last_checked_at) == ("pending", NOW + 1, None)
    assert outbox.backlog() == 0


def test_marks_fired_together_are_one_transaction_and_fail_alone(path: Path) -> None:
    statements: list[str] = []
    with Outbox.open(path, trace=statements.append) as box:
        box.store_batch([routed(i, delivery(f"k{i}")) for i in range(3)], NOW)
        rows = box.claim_due(NOW, 2)  # k2 stays pending: its mark must fail alone
        pending_id = 3
        marks = [
            FiredMark(rows[0].id, "ti_0", ("run_0",), "TRIGGERED", NOW + 1),
            FiredMark(pending_id, None, ("run_x",), "TRIGGERED", NOW + 1),
            FiredMark(rows[1].id, "ti_1", ("run_1a", "run_1b"), "TRIGGERED", NOW + 1, "b1"),
        ]
        statements.clear()
        errors = box.mark_fired_many(marks)
        assert [type(e) for e in errors] == [type(None), StoreError, type(None)]
        assert "delivery 3 is 'pending', expected 'firing'" in str(errors[1])
        assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
        assert sorted(r.run_id for r in box.live_runs()) == ["run_0", "run_1a", "run_1b"]
    states = {r["id"]: r["state"] for r in db(path)["deliveries"].rows}
    assert states == {rows[0].id: "fired", pending_id: "pending", rows[1].id: "fired"}


def test_transitions_from_the_wrong_state_are_refused(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    with pytest.raises(StoreError, match="delivery 1 is 'pending', expected 'firing'"):
        outbox.mark_fired(1, instance_id=None, run_ids=[], code="X", now=NOW)
    with pytest.raises(StoreError, match="no delivery with id 99"):
        outbox.release(99)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_fired(row.id, instance_id=None, run_ids=[], code="X", now=NOW)
    with pytest.raises(StoreError, match="is 'fired'"):
        outbox.mark_dead(
            row.id, reason=Reason.FIRE_REJECTED, code=None, message="m", error=None, now=NOW
        )


def test_release_counts_no_attempt(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.release(row.id)
    [again] = outbox.claim_due(NOW + 5, 1)
    assert (again.attempts, again.first_attempt_at) == (0, NOW + 5)


def test_mark_retry_without_counting_the_attempt(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_retry(row.id, next_attempt_at=NOW, error={"e": 1}, now=NOW, count_attempt=False)
    assert outbox.claim_due(NOW, 1)[0].attempts == 0


def test_recover_firing_after_a_crash(path: Path) -> None:
    with Outbox.open(path) as box:
        box.store_batch([routed(1, delivery("k1")), routed(2, delivery("k2"))], NOW)
        box.claim_due(NOW, 10)
    with Outbox.open(path) as box:
        assert box.recover_firing() == 2
        assert [d.state for d in box.claim_due(NOW, 10)] == ["firing", "firing"]


def test_a_firing_row_past_its_lease_is_reclaimed_unless_it_is_held(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1")), routed(2, delivery("k2"))], NOW)
    first, second = outbox.claim_due(NOW, 10, lease_seconds=10)
    assert outbox.reclaim_expired(NOW + 5) == 0  # both leases still run
    # k1 is still in the dispatcher's hands (a fire waiting for its answer): kept.
    assert outbox.reclaim_expired(NOW + 11, holding={first.id}) == 1
    [again] = outbox.claim_due(NOW + 11, 10)
    assert (again.id, again.idempotency_key) == (second.id, "k2")
    assert outbox.delivery(first.id).state == "firing"  # type: ignore[union-attr]


def test_mark_dead_writes_a_fire_dead_letter_with_the_record(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_retry(row.id, next_attempt_at=NOW, error={"code": "HTTP_500"}, now=NOW + 1)
    [row] = outbox.claim_due(NOW + 2, 1)
    envelope = {"status": 400, "code": "VALIDATION_ERROR", "message": "bad"}
    dl_id = outbox.mark_dead(
        row.id,
        reason=Reason.FIRE_REJECTED,
        code="VALIDATION_ERROR",
        message="bad",
        error=envelope,
        now=NOW + 3,
    )
    dl = outbox.dead_letter(dl_id)
    assert dl is not None
    assert (dl.stage, dl.reason, dl.code, dl.attempts) == (
        "fire",
        "fire_rejected",
        "VALIDATION_ERROR",
        2,
    )
    assert (dl.first_error_at, dl.last_error_at) == (NOW + 1, NOW + 3)
    assert (dl.delivery_id, dl.route, dl.idempotency_key) == (row.id, "order_confirmation", "k1")
    assert dl.details == envelope
    assert dl.record == record(1)
    assert outbox.backlog() == 0
    assert outbox.dead_letter(dl_id + 100) is None


def test_mark_dead_from_pending_counts_no_attempt(outbox: Outbox) -> None:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    dl_id = outbox.mark_dead(
        1, reason=Reason.RETRIES_EXHAUSTED, code=None, message="too old", error=None, now=NOW
    )
    dl = outbox.dead_letter(dl_id)
    assert dl is not None
    assert (dl.attempts, dl.first_error_at, dl.details) == (0, NOW, None)


# -- poller ---------------------------------------------------------------------------------


def fired_run(outbox: Outbox, offset: int, run_id: str, at: float = NOW) -> int:
    outbox.store_batch([routed(offset, delivery(f"k{offset}"))], at)
    [row] = outbox.claim_due(at, 1)
    outbox.mark_fired(row.id, instance_id="ti", run_ids=[run_id], code="TRIGGERED", now=at)
    return row.id


def test_runs_live_until_finished_oldest_first(outbox: Outbox) -> None:
    fired_run(outbox, 1, "run_b", NOW + 1)
    fired_run(outbox, 2, "run_a", NOW + 2)
    assert [r.run_id for r in outbox.live_runs()] == ["run_b", "run_a"]
    assert [r.run_id for r in outbox.live_runs(limit=1)] == ["run_b"]
    outbox.touch_runs(["run_b"], NOW + 10)
    run_b = outbox.run("run_b")
    assert run_b is not None
    assert run_b.last_checked_at == NOW + 10
    assert outbox.finish_run("run_b", status="completed", now=NOW + 20) is None
    assert [r.run_id for r in outbox.live_runs()] == ["run_a"]
    stats = outbox.stats(NOW + 20)
    assert (stats.live_runs, stats.runs_by_status) == (1, {"completed": 1, "pending": 1})


@pytest.mark.parametrize(
    ("status", "reason"),
    [("failed", "run_failed"), ("canceled", "run_canceled"), ("timed_out", "run_timed_out")],
)
def test_a_bad_run_end_is_a_dead_letter_once(outbox: Outbox, status: str, reason: str) -> None:
    delivery_id = fired_run(outbox, 1, "run_1")
    logs = [{"nodeId": "n1", "status": "failed", "message": "SMTP said no"}]
    dl_id = outbox.finish_run("run_1", status=status, now=NOW + 9, error="SMTP said no", logs=logs)
    assert dl_id is not None
    dl = outbox.dead_letter(dl_id)
    assert dl is not None
    assert (dl.stage, dl.reason, dl.code, dl.run_id, dl.delivery_id) == (
        "run",
        reason,
        status,
        "run_1",
        delivery_id,
    )
    assert dl.details == {"runId": "run_1", "status": status, "error": "SMTP said no", "logs": logs}
    assert dl.record == record(1)
    assert outbox.finish_run("run_1", status=status, now=NOW + 10) is None
    assert len(outbox.dead_letters()) == 1


def test_finish_run_refuses_unknown_runs_and_statuses(outbox: Outbox) -> None:
    fired_run(outbox, 1, "run_1")
    with pytest.raises(StoreError, match="'running' is not a terminal status"):
        outbox.finish_run("run_1", status="running", now=NOW)
    with pytest.raises(StoreError, match="no run with id 'nope'"):
        outbox.finish_run("nope", status="completed", now=NOW)


# -- dead letters and redrive ---------------------------------------------------------------


def test_dead_letter_filters(outbox: Outbox) -> None:
    outbox.store_batch(
        [
            Routed(record=record(1), dead_letters=(dead(Reason.INVALID_JSON),)),
            Routed(record=record(2), dead_letters=(dead(Reason.MAPPING_ERROR, "crm"),)),
        ],
        NOW,
    )
    outbox.store_batch(
        [Routed(record=record(3), dead_letters=(dead(Reason.MAPPING_ERROR, "receipt"),))], NOW + 100
    )
    assert [d.record.position for d in outbox.dead_letters() if d.record] == ["0:3", "0:2", "0:1"]
    assert len(outbox.dead_letters(reason="mapping_error")) == 2
    assert [d.route for d in outbox.dead_letters(route="crm")] == ["crm"]
    assert [d.route for d in outbox.dead_letters(since=NOW + 50)] == ["receipt"]
    assert len(outbox.dead_letters(stage="fire")) == 0
    assert len(outbox.dead_letters(limit=1)) == 1
    outbox.mark_redriven(outbox.dead_letters(route="crm")[0].id, NOW + 200)
    assert [d.route for d in outbox.dead_letters(redriven=True)] == ["crm"]
    assert len(outbox.dead_letters(redriven=False)) == 2
    with pytest.raises(StoreError, match="no dead letter with id 999"):
        outbox.mark_redriven(999, NOW)


def test_publishing_dead_letters(outbox: Outbox) -> None:
    outbox.store_batch(
        [Routed(record=record(i), dead_letters=(dead(Reason.NO_ROUTE),)) for i in range(3)], NOW
    )
    first = outbox.unpublished_dead_letters(2)
    assert [d.record.position for d in first if d.record] == ["0:0", "0:1"]
    outbox.mark_published([d.id for d in first], now=NOW + 1)
    rest = outbox.unpublished_dead_letters(10)
    assert [d.record.position for d in rest if d.record] == ["0:2"]
    published = outbox.dead_letter(first[0].id)
    assert published is not None
    assert published.published_at == NOW + 1
    assert outbox.stats(NOW).dead_letters_unpublished == 1


def make_dead(outbox: Outbox) -> int:
    outbox.store_batch([routed(1, delivery("k1"))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_dead(row.id, reason=Reason.FIRE_REJECTED, code="X", message="m", error={}, now=NOW)
    return row.id


def test_requeue_with_the_same_key_resets_the_row(outbox: Outbox) -> None:
    delivery_id = make_dead(outbox)
    assert outbox.requeue_delivery(delivery_id, new_key=None, now=NOW + 50) == delivery_id
    [row] = outbox.claim_due(NOW + 50, 1)
    assert (row.id, row.idempotency_key, row.attempts, row.last_error) == (
        delivery_id,
        "k1",
        0,
        None,
    )
    # Still queued (firing): a second redrive changes nothing.
    assert outbox.requeue_delivery(delivery_id, new_key=None, now=NOW + 60) == delivery_id
    assert outbox.claim_due(NOW + 60, 1) == []


def test_requeue_with_a_new_key_queues_a_new_row_once(outbox: Outbox, path: Path) -> None:
    delivery_id = make_dead(outbox)
    new_id = outbox.requeue_delivery(delivery_id, new_key="k1:redrive:1", now=NOW + 50)
    assert new_id != delivery_id
    assert outbox.requeue_delivery(delivery_id, new_key="k1:redrive:1", now=NOW + 51) == new_id
    [row] = outbox.claim_due(NOW + 60, 10)
    assert (row.id, row.idempotency_key, row.record) == (new_id, "k1:redrive:1", record(1))
    assert db(path)["deliveries"].get(delivery_id)["state"] == "dead"
    with pytest.raises(StoreError, match="no delivery with id 42"):
        outbox.requeue_delivery(42, new_key=None, now=NOW)


def test_stats(outbox: Outbox) -> None:
    outbox.store_batch([routed(i, delivery(f"k{i}")) for i in range(4)], NOW)
    outbox.store_batch([routed(9, delivery("k9"))], NOW + 30)
    [a] = outbox.claim_due(NOW, 1)
    outbox.mark_fired(a.id, instance_id=None, run_ids=["r1"], code="TRIGGERED", now=NOW)
    [b] = outbox.claim_due(NOW, 1)
    outbox.mark_dead(b.id, reason=Reason.FIRE_REJECTED, code=None, message="m", error=None, now=NOW)
    outbox.claim_due(NOW, 1)
    stats = outbox.stats(NOW + 100)
    assert stats.deliveries == {"pending": 2, "firing": 1, "fired": 1, "retry_wait": 0, "dead": 1}
    assert (stats.backlog, stats.live_runs, stats.dead_letters) == (3, 1, 1)
    assert stats.oldest_pending_age == 100.0
    assert stats.dead_letters_unredriven == 1


# -- concurrency ----------------------------------------------------------------------------


def test_two_connections_on_one_file_take_turns(path: Path) -> None:
    """Writers on separate connections queue on busy_timeout instead of failing."""
    boxes = [Outbox.open(path), Outbox.open(path)]
    errors: list[BaseException] = []

    def write(box: Outbox, base: int) -> None:
        try:
            for i in range(50):
                box.store_batch([routed(base + i, delivery(f"k{base + i}"))], NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b, n * 1000)) for n, b in enumerate(boxes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert boxes[0].backlog() == 100
    for b in boxes:
        b.close()


# -- schema migration and ingest speed ------------------------------------------------------


def test_a_version_1_file_migrates_and_keeps_its_rows(path: Path) -> None:
    from brew_bridge.store.schema import _V1

    conn = sqlite3.connect(path)
    for statement in _V1:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Outbox.open(path) as box:
        assert box.schema_version == SCHEMA_VERSION
    indexes = {ix.name for ix in db(path)["deliveries"].indexes}
    assert "deliveries_state" not in indexes
    assert "deliveries_settled" in indexes
    with Outbox.open(path) as box:
        box.store_batch([routed(1, delivery("k1"))], NOW)
        assert box.stats(NOW).deliveries["pending"] == 1


def test_a_partly_replayed_batch_links_each_delivery_to_its_own_record(outbox: Outbox) -> None:
    """Records stored by an earlier batch keep their ids; new ones get theirs."""
    outbox.store_batch([routed(2, delivery("k2")), routed(4, delivery("k4"))], NOW)
    result = outbox.store_batch(
        [routed(i, delivery(f"k{i}"), delivery(f"x{i}", route="other")) for i in range(1, 6)],
        NOW,
    )
    assert (result.records, result.inserted, result.duplicates) == (3, 8, 2)
    claimed = outbox.claim_due(NOW, 100, ordered=False)
    assert len(claimed) == 10
    for d in claimed:
        assert d.record is not None
        assert d.idempotency_key[1:] == d.record.position.split(":")[1]


def test_stats_counts_every_state_through_the_indexes(outbox: Outbox) -> None:
    outbox.store_batch([routed(i, delivery(f"k{i}")) for i in range(3)], NOW)
    [a, b] = outbox.claim_due(NOW, 2, ordered=False)
    outbox.mark_retry(a.id, next_attempt_at=NOW + 5, error={"e": 1}, now=NOW)
    stats = outbox.stats(NOW)
    assert stats.deliveries == {"pending": 1, "firing": 1, "fired": 0, "retry_wait": 1, "dead": 0}
    assert outbox.recover_firing() == 1
    assert outbox.stats(NOW).deliveries["pending"] == 2
    assert b.id != a.id


@pytest.mark.slow
def test_an_outbox_on_a_read_only_filesystem_says_so(disk: Path) -> None:
    Outbox.open(disk / "outbox.db").close()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(StoreError, match="is read-only; mount the volume read-write"):
        Outbox.open(disk / "outbox.db")


def _fire(outbox: Outbox, key: str, offset: int, run_ids: list[str], code: str) -> int:
    outbox.store_batch([routed(offset, delivery(key, ordering_key=None))], NOW)
    [row] = outbox.claim_due(NOW, 1)
    outbox.mark_fired(row.id, instance_id=None, run_ids=run_ids, code=code, now=NOW, ref="b1")
    return row.id


def test_a_run_adopted_by_a_second_delivery_ends_for_both(outbox: Outbox) -> None:
    # Boring Marketing's 409 names the run in progress, which the first delivery started.
    first = _fire(outbox, "k1", 1, ["run_shared"], "TRIGGERED")
    second = _fire(outbox, "k2", 2, ["run_shared"], "ADOPTED")
    live = outbox.live_runs()
    assert sorted((r.run_id, r.delivery_id, r.ref) for r in live) == [
        ("run_shared", first, "b1"),
        ("run_shared", second, "b1"),
    ]
    dead_id = outbox.finish_run("run_shared", status="failed", now=NOW + 5, error="boom")
    assert dead_id is not None
    assert outbox.live_runs() == []
    letters = outbox.dead_letters(reason="run_failed")
    assert sorted(d.delivery_id for d in letters) == [first, second]
    assert outbox.finish_run("run_shared", status="failed", now=NOW + 6) is None  # once only


def test_a_stuck_shared_run_fires_each_delivery_again_within_its_bound(outbox: Outbox) -> None:
    first = _fire(outbox, "k1", 1, ["run_old", "run_shared"], "TRIGGERED")  # 2 runs started
    second = _fire(outbox, "k2", 2, ["run_shared"], "ADOPTED")
    outbox.finish_run("run_old", status="completed", now=NOW + 1)
    # max_runs 2: the second may fire again, the first has started two runs already.
    assert not outbox.refire_run("run_shared", now=NOW + 2, error="stuck", max_runs=2)
    [pending] = outbox.claim_due(NOW + 2, 10)
    assert pending.id == second
    [left] = outbox.live_runs()
    assert (left.run_id, left.delivery_id) == ("run_shared", first)


def test_overview_is_the_stats_and_the_dead_letters_in_one_snapshot(outbox: Outbox) -> None:
    outbox.store_batch(
        [
            Routed(record=record(1), dead_letters=(dead(Reason.INVALID_JSON),)),
            Routed(record=record(2), dead_letters=(dead(Reason.PAYLOAD_INVALID, "crm"),)),
            Routed(record=record(3), dead_letters=(dead(Reason.INVALID_JSON),)),
            routed(4, delivery("ok:4")),
        ],
        NOW,
    )
    outbox.mark_redriven(outbox.dead_letters(reason=Reason.INVALID_JSON)[0].id, NOW + 1)
    view = outbox.overview(NOW + 10, newest=2)
    assert view.stats == outbox.stats(NOW + 10)
    assert view.dead_letters_by_reason == {"invalid_json": 2, "payload_invalid": 1}
    assert view.not_redriven_by_reason == {"invalid_json": 1, "payload_invalid": 1}
    assert view.dead_letters_by_reason == outbox.dead_letters_by_reason()
    assert [d.id for d in view.newest_dead_letters] == [d.id for d in outbox.dead_letters(limit=2)]
    assert len(view.newest_dead_letters) == 2
