"""`brew-bridge dlq list|show` and `brew-bridge outbox stats` on real outbox files."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dlq_support import NOW, Filled, fire_dead_letter

from brew_bridge.cli import main
from brew_bridge.store import Outbox


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_a_table_of_every_dead_letter(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "dlq", "list", "--outbox", str(filled.path))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "CREATED", "STAGE", "REASON", "CODE", "ROUTE", "KEY", "MESSAGE"]
    ids = [int(r.split()[0]) for r in rows]
    assert ids == sorted([filled.fire_dl, *filled.run_dls, filled.binary_dl], reverse=True)
    fire_row = next(r for r in rows if r.startswith(f"{filled.fire_dl} "))
    assert "fire_rejected" in fire_row
    assert "INVALID_REQUEST" in fire_row
    assert "welcome:e1" in fire_row
    assert fire_row.endswith("...")  # the 130-character message is cut to fit
    assert "2023-11-14T22:13:21Z" in fire_row


def test_list_filters_by_reason_route_and_since(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--outbox", str(filled.path))
    _, out, _ = run(capsys, "dlq", "list", *where, "--reason", "run_failed", "--json")
    docs = [json.loads(line) for line in out.splitlines()]
    assert sorted(d["id"] for d in docs) == filled.run_dls
    assert all(d["reason"] == "run_failed" and d["runId"] in {"run_a", "run_b"} for d in docs)
    assert all("value" not in d["record"] for d in docs)  # list stays small; show has it

    _, out, _ = run(capsys, "dlq", "list", *where, "--route", "welcome", "--json")
    assert len(out.splitlines()) == 3  # the ingest dead letter has no route

    _, out, _ = run(capsys, "dlq", "list", *where, "--since", "2023-11-14T22:13:20Z", "--json")
    assert len(out.splitlines()) == 4
    _, out, _ = run(capsys, "dlq", "list", *where, "--since", "2023-11-14T23:00:00", "--json")
    assert out == ""

    _, out, _ = run(capsys, "dlq", "list", *where, "--limit", "2")
    assert len(out.splitlines()) == 3  # header + 2


def test_list_since_accepts_a_duration(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = Outbox.open(outbox_path)
    try:
        fire_dead_letter(outbox, 1, "welcome:old", now=time.time() - 7200)
        _, recent = fire_dead_letter(outbox, 2, "welcome:new", now=time.time() - 60)
    finally:
        outbox.close()
    _, out, _ = run(capsys, "dlq", "list", "--outbox", str(outbox_path), "--since", "1h", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [recent]


def test_list_says_when_nothing_matches(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dlq", "list", "--outbox", str(filled.path), "--reason", "too_large")
    assert (code, out) == (0, "no dead letters match\n")


def test_show_prints_everything_as_json(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dlq", "show", str(filled.run_dls[0]), "--outbox", str(filled.path))
    assert code == 0
    doc = json.loads(out)
    assert doc["stage"] == "run"
    assert doc["reason"] == "run_failed"
    assert doc["code"] == "failed"
    assert doc["idempotencyKey"] == "welcome:e2"
    assert doc["deliveryId"] == filled.run_delivery
    assert doc["details"]["logs"] == [
        {"node": "send_email", "level": "error", "message": "mailbox unavailable"}
    ]
    assert doc["createdAt"] == "2023-11-14T22:13:25Z"
    assert doc["createdAtEpoch"] == NOW + 5
    assert doc["redrivenAt"] is None
    record = doc["record"]
    assert (record["stream"], record["position"]) == ("signups", "0:2")
    assert record["key"] == {"encoding": "utf-8", "data": "user-1"}
    assert record["value"] == {
        "encoding": "utf-8",
        "data": '{"id": "e2", "email": "a@example.com"}',
    }
    assert record["headers"] == [{"key": "trace", "value": {"encoding": "utf-8", "data": "abc"}}]


def test_show_gives_binary_values_as_base64(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "dlq", "show", str(filled.binary_dl), "--outbox", str(filled.path))
    value = json.loads(out)["record"]["value"]
    assert value["encoding"] == "base64"
    assert base64.b64decode(value["data"]) == b"\xff\xfe not json"


def test_show_unknown_id_says_so_and_exits_1(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "dlq", "show", "999", "--outbox", str(filled.path))
    assert (code, out) == (1, "")
    assert "no dead letter with id 999" in err


def test_a_missing_outbox_is_an_error_not_an_empty_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    code, _, err = run(capsys, "dlq", "list", "--outbox", str(missing))
    assert code == 1
    assert f"no outbox at {missing}" in err
    assert not missing.exists()
    code, _, err = run(capsys, "outbox", "stats")
    assert code == 1
    assert "--config FILE or --outbox PATH" in err


def test_a_bad_since_is_a_usage_error(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dlq", "list", "--outbox", str(filled.path), "--since", "yesterday"])
    assert exc.value.code == 2
    assert "neither a duration" in capsys.readouterr().err


def test_outbox_stats(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "outbox", "stats", "--outbox", str(filled.path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["deliveries"] == {
        "pending": 1,
        "firing": 0,
        "fired": 1,
        "retry_wait": 0,
        "dead": 1,
    }
    assert doc["backlog"] == 1
    assert doc["runs"] == {"live": 0, "byStatus": {"failed": 2}}
    assert doc["deadLetters"]["total"] == 4
    assert doc["deadLetters"]["byReason"] == {
        "fire_rejected": 1,
        "invalid_json": 1,
        "run_failed": 2,
    }
    # The pending row was stored at NOW: its age is the time since then.
    assert doc["oldestPendingAgeSeconds"] == pytest.approx(time.time() - NOW, abs=5)

    code, out, _ = run(capsys, "outbox", "stats", "--outbox", str(filled.path))
    assert code == 0
    assert "pending 1, firing 0, fired 1, retry_wait 0, dead 1" in out
    assert "0 live; failed 2" in out
    assert "fire_rejected 1 (1 not redriven)" in out
    age = re.search(r"oldest pending  (\d+d(?: \d+h)?) \((\d+) s\)", out)
    assert age is not None, out  # days (and hours unless 0), for a row this old
    assert int(age[2]) == pytest.approx(time.time() - NOW, abs=5)


def test_outbox_stats_on_an_empty_outbox(
    outbox_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Outbox.open(outbox_path).close()
    code, out, _ = run(capsys, "outbox", "stats", "--outbox", str(outbox_path))
    assert code == 0
    assert "oldest pending  none waiting" in out
    assert "dead letters    0" in out


def test_a_bad_config_is_reported_with_its_file_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("outbox:\n  pathh: x.db\n")
    code, out, err = run(capsys, "dlq", "list", "--config", str(config))
    assert (code, out) == (1, "")
    assert str(config) in err
    assert "pathh" in err


def test_config_locates_the_outbox(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    config = filled.path.parent / "bridge.yaml"
    config.write_text(
        f"outbox:\n  path: {filled.path}\n"
        "triggers:\n"
        "  tri_welcome:\n"
        "    payload_schema:\n"
        "      type: object\n"
        "      fields: [{key: email, type: string, required: true}]\n"
        "routes:\n"
        "  - {name: welcome, topics: [signups], trigger: tri_welcome,"
        " payload: {email: event.email}}\n"
    )
    code, out, _ = run(capsys, "outbox", "stats", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out)["deadLetters"]["total"] == 4


def test_the_installed_command_runs_as_a_process(filled: Filled) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "brew_bridge.cli", "dlq", "list", "--outbox", str(filled.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 5  # header + 4 dead letters
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "brew_bridge.cli",
            "dlq",
            "show",
            "42",
            "--outbox",
            str(filled.path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "no dead letter with id 42" in missing.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly(filled: Filled) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the `head` that has already gone away
    try:
        gone = subprocess.run(
            [sys.executable, "-m", "brew_bridge.cli", "dlq", "list", "--outbox", str(filled.path)],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert gone.returncode == 141
    assert gone.stderr == ""


def test_a_command_leaves_sigpipe_ignored_for_the_sockets_that_follow(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    # With SIGPIPE at its default, a peer closing a socket would kill this process.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    code, _, _ = run(capsys, "dlq", "list", "--outbox", str(filled.path))
    assert code == 0
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
