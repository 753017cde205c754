"""The README's run command, `brew-bridge dev`, on ports of its own.

It starts the real pieces as subprocesses (Tansu, `brew-bridge sim`, `brew-bridge run
--once`), so these tests run the example config with its addresses moved to free ports:
the `--json` summary against the samples manifest; Ctrl-C mid-run and under `--keep`
leaves no process and no port behind.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from brew_bridge.testing.kafka import free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Dev:
    """A config of the example's on free ports, and the `dev` command line for it."""

    argv: list[str]
    ports: list[tuple[str, int]]  # every (host, port) something listens on
    metrics: str  # the bridge's /metrics URL
    outbox: Path


def dev_on_free_ports(tmp_path: Path, *extra: str) -> Dev:
    config = yaml.safe_load((CONFIG / "example.yaml").read_text())
    kafka, brew, server = free_port(), free_port(), free_port()
    config["kafka"]["bootstrap_servers"] = f"127.0.0.1:{kafka}"
    config["brew"]["base_url"] = f"http://127.0.0.1:{brew}/api"
    ports = [("127.0.0.1", kafka), ("127.0.0.1", brew), (config["server"]["host"], server)]
    for target in config["targets"].values():  # each simulator on a port of its own
        port = free_port()
        target["base_url"] = f"http://127.0.0.1:{port}"
        ports.append(("127.0.0.1", port))
    config["server"]["port"] = server
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    argv = [
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
        *extra,
    ]
    return Dev(argv, ports, f"http://127.0.0.1:{server}/metrics", tmp_path / "dev.db")


def test_dev_runs_the_samples_through_to_their_end(tmp_path: Path) -> None:
    dev = dev_on_free_ports(tmp_path, "--json")
    done = subprocess.run(
        dev.argv, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)  # --json: stdout is the summary and nothing else

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
    assert "outbox stats --outbox" in done.stderr  # the notes for a person: on stderr


class DevProcess:
    """`brew-bridge dev` running, its stdout read line by line as it comes."""

    def __init__(self, dev: Dev, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            dev.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"dev exited before {what}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {what} in {timeout} s:\n{self.output}"
            time.sleep(0.05)

    def interrupt(self) -> tuple[int, list[psutil.Process]]:
        """SIGINT, as a Ctrl-C would send it; the exit code and what ran below dev."""
        below = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code, below

    def kill(self) -> None:
        if self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., tuple[Dev, DevProcess]]]:
    started: list[DevProcess] = []

    def start(*extra: str) -> tuple[Dev, DevProcess]:
        dev = dev_on_free_ports(tmp_path, *extra)
        started.append(DevProcess(dev, tmp_path))
        return dev, started[-1]

    yield start
    for proc in started:  # a failed test leaves nothing running either
        proc.kill()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- our loopback URL
            return True
    except (urllib.error.URLError, OSError):
        return False


def assert_nothing_left(below: list[psutil.Process], ports: list[tuple[str, int]]) -> None:
    alive = []
    for process in below:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    assert alive == []
    for host, port in ports:
        with socket.socket() as probe:  # a port still listened on cannot be bound
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))


def test_ctrl_c_mid_run_stops_every_process_and_frees_every_port(
    running: Callable[..., tuple[Dev, DevProcess]],
) -> None:
    dev, proc = running()
    proc.wait_until(lambda: answers(dev.metrics), "bridge serving /metrics")
    code, below = proc.interrupt()
    assert code == 130, proc.output
    # the broker, the three simulators and the bridge (and whatever the bridge started)
    assert len(below) >= 5
    assert_nothing_left(below, dev.ports)
    stopped = proc.output.splitlines()[-1]
    assert stopped.startswith("Interrupted (SIGINT): stopped the bridge (pid ")
    for title in ("the Brew simulator", "the Pinkfish simulator", "the broker"):
        assert title in stopped
    assert "Done in" not in proc.output  # it was stopped before its end


def test_keep_serves_after_the_summary_until_ctrl_c(
    running: Callable[..., tuple[Dev, DevProcess]],
) -> None:
    dev, proc = running("--keep")
    proc.wait_until(lambda: "Still running" in proc.output, "'Still running' line")
    assert "Done in" in proc.output
    assert "outbox stats --outbox" in proc.output
    assert answers(dev.metrics)  # the kept bridge, a plain `run`
    assert dev.outbox.is_file()
    # Its status page shows the dev run's outbox: the broken samples' dead letters.
    page_url = dev.metrics.removesuffix("metrics")
    with urllib.request.urlopen(page_url, timeout=5) as answer:  # noqa: S310 -- loopback
        page = answer.read().decode()
    assert "data-panel='newest-dead-letters'" in page
    assert "no dead letters" not in page
    code, below = proc.interrupt()
    assert code == 130, proc.output
    assert_nothing_left(below, dev.ports)
    assert "stopped the bridge (pid " in proc.output.splitlines()[-1]
