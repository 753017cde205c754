"""``brew-bridge sim`` as a process: it says where it listens, serves, and refuses bad seeds."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sim_support import KEY, fire

URL = re.compile(r"Brew API (\S+) at (http://127\.0\.0\.1:\d+/api) ")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "triggers:\n"
        "  tri_cli:\n"
        "    payloadSchema: {type: object, fields: [{key: email, type: string, required: true}]}\n"
        "    automations: [{automationId: auto_cli}]\n"
    )
    command = [sys.executable, "-m", "brew_bridge.cli.sim", "--port", "0", "--seed", str(seed)]
    with subprocess.Popen([*command, "--api-shape", "10"], stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            match = URL.search(p.stdout.readline())
            assert match is not None
            yield match[1], match[2]
        finally:
            p.terminate()
            # uvicorn shuts down cleanly, then re-raises SIGTERM so the parent sees it.
            assert p.wait(timeout=10) in (0, -signal.SIGTERM)


def test_the_command_serves_its_seed_in_the_shape_asked(served: tuple[str, str]) -> None:
    shape, base_url = served
    assert shape == "10"
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        body = fire(client, "tri_cli").json()
    assert body["status"] == "triggered"
    assert len(body["automationRunIds"]) == 1  # the 10.x bare body


def test_a_bad_seed_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("triggers:\n  tri_x:\n    payloadSchema: {type: object, fields: []}\n")
    result = subprocess.run(
        [sys.executable, "-m", "brew_bridge.cli.sim", "--port", "0", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{seed}:3: seed.triggers.tri_x.payloadSchema" in result.stderr
    assert "email" in result.stderr
