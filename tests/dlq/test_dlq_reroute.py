"""Redrive of ingest dead letters: the config is fixed, the stored original record goes
through routing again, and the event is queued with the key it would have had at first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dlq_support import NOW, source_record

from brew_bridge.cli import main
from brew_bridge.config import compiled_routes, load_config
from brew_bridge.events import SourceRecord
from brew_bridge.mapping.routing import route_record
from brew_bridge.store import Outbox

TRIGGERS = """
triggers:
  tri_welcome:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
  tri_goodbye:
    payload_schema:
      type: object
      fields:
        - {key: email, type: string, required: true}
"""
AUDIT = """
  - name: audit
    topics: [signups]
    match: {type: user.created}
    trigger: tri_goodbye
    payload:
      email: event.user.email
"""


def write_config(tmp_path: Path, name: str, welcome_email_path: str, *, goodbye: bool) -> Path:
    routes = f"""
routes:
  - name: welcome
    topics: [signups]
    match: {{type: user.created}}
    trigger: tri_welcome
    payload:
      email: {welcome_email_path}
{AUDIT}"""
    if goodbye:
        routes += """
  - name: goodbye
    topics: [signups]
    match: {type: user.deleted}
    trigger: tri_goodbye
    payload:
      email: event.user.email
"""
    path = tmp_path / name
    path.write_text(f"outbox:\n  path: {tmp_path / 'outbox.db'}\n{TRIGGERS}{routes}")
    return path


@pytest.fixture
def configs(tmp_path: Path) -> tuple[Path, Path]:
    broken = write_config(tmp_path, "broken.yaml", "event.user.mail", goodbye=False)
    fixed = write_config(tmp_path, "fixed.yaml", "event.user.email", goodbye=True)
    return broken, fixed


def event(offset: int, event_id: str, event_type: str) -> SourceRecord:
    doc = {"id": event_id, "type": event_type, "user": {"email": "ann@example.com"}}
    return source_record(offset, json.dumps(doc).encode())


def ingest(config: Path, records: list[SourceRecord]) -> None:
    """What the Kafka source does with a batch: route each record, store in one go."""
    loaded = load_config(config)
    routes = compiled_routes(loaded)
    outbox = Outbox.open(loaded.outbox.path)
    try:
        outbox.store_batch([route_record(r, routes) for r in records], NOW)
    finally:
        outbox.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_dead_letters_are_re_routed_with_the_fixed_config(
    tmp_path: Path, configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    broken, fixed = configs
    created, deleted = event(1, "evt_1", "user.created"), event(2, "evt_2", "user.deleted")
    ingest(broken, [created, deleted])
    outbox = Outbox.open(tmp_path / "outbox.db")
    try:
        dead = {d.reason: d for d in outbox.dead_letters()}
        assert set(dead) == {"payload_invalid", "no_route"}
        assert dead["payload_invalid"].route == "welcome"
        before = outbox.stats(NOW).deliveries["pending"]
        assert before == 1  # audit delivered from the start
    finally:
        outbox.close()

    # Still broken: nothing is stored, the operator is told why.
    code, out, _ = run(
        capsys, "dlq", "redrive", "--reason", "payload_invalid", "--config", str(broken)
    )
    assert code == 0
    assert "0 redriven, 1 skipped (1 still_fails)" in out
    assert "still fails: payload_invalid" in out

    # Without a config there are no routes to re-route with.
    code, out, _ = run(
        capsys, "dlq", "redrive", "--since", "2020-01-01", "--outbox", str(tmp_path / "outbox.db")
    )
    assert "0 redriven, 2 skipped (2 needs_config)" in out

    code, out, _ = run(capsys, "dlq", "redrive", "--since", "2020-01-01", "--config", str(fixed))
    assert code == 0
    assert "2 redriven, 0 skipped" in out

    # The keys are exactly what routing derives for these records the first time.
    fixed_routes = compiled_routes(load_config(fixed))
    expected = {
        d.idempotency_key
        for r in (created, deleted)
        for d in route_record(r, fixed_routes).deliveries
    }
    assert expected == {"welcome:evt_1", "audit:evt_1", "goodbye:evt_2"}
    outbox = Outbox.open(tmp_path / "outbox.db")
    try:
        queued = outbox.claim_due(2e9, 10, ordered=False)
        assert sorted((d.route, d.idempotency_key) for d in queued) == [
            ("audit", "audit:evt_1"),  # stored once: only the failed route was re-routed
            ("goodbye", "goodbye:evt_2"),
            ("welcome", "welcome:evt_1"),
        ]
        welcome = next(d for d in queued if d.route == "welcome")
        assert welcome.payload == {"email": "ann@example.com"}
        assert welcome.record == created
        assert all(d.redriven_at is not None for d in outbox.dead_letters())
        assert len(outbox.dead_letters()) == 2  # no new dead letters
    finally:
        outbox.close()

    # Again, forced: the deliveries exist, the outbox refuses to queue them twice.
    code, out, _ = run(
        capsys, "dlq", "redrive", "--since", "2020-01-01", "--force", "--config", str(fixed)
    )
    assert "(already in the outbox)" in out
    outbox = Outbox.open(tmp_path / "outbox.db")
    try:
        assert outbox.stats(2e9).deliveries["pending"] == 0
        assert outbox.stats(2e9).deliveries["firing"] == 3
    finally:
        outbox.close()


def test_new_key_on_an_ingest_redrive(
    tmp_path: Path, configs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    broken, fixed = configs
    ingest(broken, [event(1, "evt_1", "user.created")])
    code, out, _ = run(
        capsys, "dlq", "redrive", "--reason", "payload_invalid", "--new-key", "--config", str(fixed)
    )
    assert code == 0
    assert "key=welcome:evt_1:redrive-1" in out
