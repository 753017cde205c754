"""The README's run command, `brew-bridge dev`, on ports of its own.

It starts the real pieces as subprocesses (Tansu, `brew-bridge sim`, `brew-bridge run
--once`), so this test runs the example config with its addresses moved to free ports
and checks the summary the user sees against the samples manifest.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from brew_bridge.testing.kafka import free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"

pytestmark = pytest.mark.slow


def _summary(stdout: str) -> dict[str, object]:
    lines = stdout.splitlines()
    start = lines.index("{")
    end = lines.index("}", start)
    summary: dict[str, object] = json.loads("\n".join(lines[start : end + 1]))
    return summary


def test_dev_runs_the_samples_through_to_their_end(tmp_path: Path) -> None:
    config = yaml.safe_load((CONFIG / "example.yaml").read_text())
    config["kafka"]["bootstrap_servers"] = f"127.0.0.1:{free_port()}"
    config["brew"]["base_url"] = f"http://127.0.0.1:{free_port()}/api"
    for target in config["targets"].values():  # each simulator on a port of its own
        target["base_url"] = f"http://127.0.0.1:{free_port()}"
    config["server"]["port"] = free_port()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "brew_bridge",
            "dev",
            "--config",
            str(tmp_path / "config.yaml"),
            "--seed",
            str(CONFIG / "sim-seed.yaml"),
            "--samples",
            str(CONFIG / "samples" / "manifest.yaml"),
            "--outbox",
            str(tmp_path / "dev.db"),
            "--log",
            str(tmp_path / "dev.log"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = _summary(done.stdout)

    manifest = yaml.safe_load((CONFIG / "samples" / "manifest.yaml").read_text())["samples"]
    produced = [entry for entry in manifest if not entry.get("env") and "topic" in entry]
    deliveries = sum(len(entry["expect"].get("deliver", [])) for entry in produced)
    ingest_reasons = Counter(
        dl["reason"] for entry in produced for dl in entry["expect"].get("dead_letters", [])
    )

    events = summary["events"]
    assert isinstance(events, dict)
    assert events["consumed"] == len(produced)
    assert events["routed"] == deliveries
    assert summary["fires"] == {"TRIGGERED": deliveries}
    dead = summary["dead_letters"]
    assert isinstance(dead, dict)
    assert {reason: dead.get(reason, 0) for reason in ingest_reasons} == dict(ingest_reasons)
    # config/sim-seed.yaml makes some automations fail on purpose: every run ends, and
    # every failed run is a dead letter.
    runs = summary["runs"]
    assert isinstance(runs, dict)
    assert runs.get("failed", 0) > 0
    assert set(runs) <= {"completed", "failed"}
    assert dead.get("run_failed", 0) == runs["failed"]
    # The Pinkfish and Boring Marketing routes fired too, and their runs completed.
    with sqlite3.connect(tmp_path / "dev.db") as db:
        ends = db.execute(
            "SELECT d.target, d.state, u.status FROM deliveries AS d "
            "JOIN runs AS u ON u.delivery_id = d.id WHERE d.target <> 'brew'"
        ).fetchall()
    assert sorted(ends) == [("growth", "fired", "completed"), ("research", "fired", "completed")]
    assert "outbox stats --outbox" in done.stdout
