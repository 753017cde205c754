"""``brew-bridge sim --target pinkfish`` as a process: it says where it listens, serves
its seed, and refuses a bad one."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from pinkfish_support import fire

COMMAND = [sys.executable, "-m", "brew_bridge.cli.sim", "--target", "pinkfish", "--port", "0"]
URL = re.compile(
    r"^brew-bridge sim: Pinkfish API at (http://127\.0\.0\.1:\d+) \(admin: \1/_sim/\)$"
)


def test_the_command_serves_its_seed_and_says_where_first(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("triggers:\n  trg_cli: {steps: 2}\n")
    with subprocess.Popen([*COMMAND, "--seed", str(seed)], stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            match = URL.match(p.stdout.readline().rstrip("\n"))
            assert match is not None
            with httpx.Client(base_url=match[1]) as client:
                fired = fire(client, "trg_cli", key="pf_cli_key_12345")
                assert fired.status_code == 200
                assert fire(client, "trg_hello", key="pf_cli_key_12345").status_code == 404
        finally:
            p.terminate()
            # uvicorn shuts down cleanly, then re-raises SIGTERM so the parent sees it.
            assert p.wait(timeout=10) in (0, -signal.SIGTERM)


def test_a_bad_seed_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("triggers:\n  trg_x:\n    outcome: DONE\n")
    result = subprocess.run(
        [*COMMAND, "--seed", str(seed)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert f"{seed}:3: seed.triggers.trg_x.outcome" in result.stderr
    assert result.stdout == ""
