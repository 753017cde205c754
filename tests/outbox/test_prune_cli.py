"""`brew-bridge outbox prune` on real outbox files: what it prints, what it deletes, and
its exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from brew_bridge.cli import main
from brew_bridge.events import NewDelivery, Routed, SourceRecord
from brew_bridge.store import Outbox

NOW = 1_700_000_000.0  # 2023: long before any default retention cut-off


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """One fired delivery (old) and one pending (never pruned)."""
    file = tmp_path / "outbox.db"
    with Outbox.open(file) as box:
        for offset in (1, 2):
            record = SourceRecord(
                source="kafka", stream="t", position=f"0:{offset}", key=None, value=b"{}"
            )
            delivery = NewDelivery(
                route="welcome",
                target="brew",
                action="tri",
                idempotency_key=f"k{offset}",
                payload={},
            )
            box.store_batch([Routed(record=record, deliveries=(delivery,))], NOW)
        [d] = box.claim_due(NOW, 1)
        box.mark_fired(d.id, instance_id=None, run_ids=[], code="TRIGGERED", now=NOW)
    return file


def rows(path: Path) -> dict[str, int]:
    db = sqlite_utils.Database(path)
    return {t: db[t].count for t in ("records", "deliveries")}


def config(tmp_path: Path, path: Path, retention: float) -> Path:
    file = tmp_path / "bridge.yaml"
    file.write_text(
        f"outbox:\n  path: {path}\n  retention_seconds: {retention}\n"
        "triggers:\n"
        "  tri:\n"
        "    payload_schema:\n"
        "      type: object\n"
        "      fields: [{key: email, type: string, required: true}]\n"
        "routes:\n"
        "  - {name: welcome, topics: [signups], trigger: tri, payload: {email: event.email}}\n"
    )
    return file


def test_dry_run_reports_and_keeps_then_prune_deletes(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "outbox", "prune", "--outbox", str(path), "--dry-run")
    assert code == 0
    assert out.startswith("would delete 1 deliveries, 0 runs, 0 dead letters, 1 records")
    assert rows(path) == {"records": 2, "deliveries": 2}

    code, out, _ = run(capsys, "outbox", "prune", "--outbox", str(path), "--older-than", "7d")
    assert code == 0
    assert out.startswith("deleted 1 deliveries, 0 runs, 0 dead letters, 1 records")
    assert "(7d ago)" in out
    assert rows(path) == {"records": 1, "deliveries": 1}

    code, out, _ = run(capsys, "outbox", "prune", "--outbox", str(path))
    assert (code, out.split(",")[0]) == (0, "deleted 0 deliveries")


def test_older_than_after_the_fire_keeps_it(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "outbox", "prune", "--outbox", str(path), "--older-than", "2023-11-14T22:00:00Z"
    )
    assert code == 0
    assert out.startswith("deleted 0 deliveries")
    assert rows(path) == {"records": 2, "deliveries": 2}


def test_the_config_retention_is_the_default(
    tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = config(tmp_path, path, 1e10)  # longer than the fire is old: keep
    code, out, _ = run(capsys, "outbox", "prune", "--config", str(far))
    assert (code, out.split(",")[0]) == (0, "deleted 0 deliveries")

    forever = config(tmp_path, path, 0)
    code, _, err = run(capsys, "outbox", "prune", "--config", str(forever))
    assert code == 1
    assert "retention_seconds is 0" in err
    assert "--older-than" in err
    assert rows(path) == {"records": 2, "deliveries": 2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--config FILE or --outbox PATH"),
        (("--outbox", "{missing}"), "no outbox at"),
        (("--outbox", "{path}", "--older-than", "soon"), "--older-than: 'soon' is neither"),
    ],
)
def test_errors_exit_1_and_say_what_to_do(
    path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    args = [a.format(path=path, missing=tmp_path / "nope.db") for a in argv]
    code, out, err = run(capsys, "outbox", "prune", *args)
    assert code == 1
    assert out == ""
    assert message in err
    assert rows(path) == {"records": 2, "deliveries": 2}


def test_the_worker_prunes_with_the_configured_retention(tmp_path: Path, path: Path) -> None:
    from brew_bridge.config import load_config
    from brew_bridge.worker import Worker

    days = 86400.0
    worker = Worker(
        load_config(config(tmp_path, path, 7 * days), env={}),
        env={"BREW_API_KEY": "test-key"},
        clock=lambda: NOW + 6 * days,
    )
    with Outbox.open(path) as box:
        worker._outbox = box
        worker._prune()  # the fire is 6 days old: kept
        assert rows(path) == {"records": 2, "deliveries": 2}
        worker._clock = lambda: NOW + 8 * days
        worker._prune()
        assert rows(path) == {"records": 1, "deliveries": 1}
