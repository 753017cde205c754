"""cli/processes.py: whatever a command starts is gone when it ends, Ctrl-C or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from brew_bridge.cli.processes import Children, Interrupted

# Starts a grandchild of its own, prints its pid, then waits to be stopped.
PARENT = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(600)\n"
)
# Ignores SIGTERM, says so, waits: only SIGKILL ends it.
STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def start_parent(children: Children) -> tuple[int, int]:
    proc = children.start("the parent", [sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        return proc.pid, int(proc.stdout.readline())


def test_leaving_stops_every_child_and_what_it_started() -> None:
    with Children() as children:
        parent, grandchild = start_parent(children)
        assert not gone(grandchild)
    assert gone(parent)
    assert gone(grandchild)
    assert [(s.title, s.pid) for s in children.stopped] == [("the parent", parent)]


def test_a_child_deaf_to_sigterm_is_killed_after_its_grace() -> None:
    with Children() as children:
        proc = children.start(
            "the stubborn one",
            [sys.executable, "-c", STUBBORN],
            stdout=subprocess.PIPE,
            grace=0.2,
        )
        assert proc.stdout is not None
        with proc.stdout:
            assert proc.stdout.readline().strip() == b"ready"
    assert proc.returncode == -signal.SIGKILL
    assert [s.title for s in children.stopped] == ["the stubborn one"]


def test_ctrl_c_inside_stops_everything_newest_first_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGINT)
    closed: list[str] = []
    children = Children()
    pids: list[int] = []

    def ctrl_c_midway() -> None:
        with children:
            children.adopt("the broker", lambda: closed.append("broker") or 4242)
            pids.extend(start_parent(children))
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as raised:
        ctrl_c_midway()
    parent, grandchild = pids
    assert raised.value.exit_code == 130
    assert gone(parent)
    assert gone(grandchild)
    assert closed == ["broker"]
    assert [s.title for s in children.stopped] == ["the parent", "the broker"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_while_held_waits_for_the_end_of_the_step() -> None:
    done = []

    def step(children: Children) -> None:
        with children.holding_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("the step went on")

    with Children() as children:
        with pytest.raises(Interrupted) as raised:
            step(children)
        assert done == ["the step went on"]
        assert raised.value.exit_code == 143
