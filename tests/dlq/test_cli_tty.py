"""`dlq list` and `outbox stats` at a real terminal (a pty): rich tables in colour; the
same commands into a pipe print the plain text the other tests pin down."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from dlq_support import Filled

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def at_a_terminal(*argv: str, columns: int = 160) -> str:
    """``brew-bridge ARGV`` with stdout and stderr on a pty ``columns`` wide; all it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "brew_bridge", *argv],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color"},
    )
    os.close(follower)
    chunks = []
    try:
        while chunk := _read(leader):
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert proc.wait(60) == 0
    return b"".join(chunks).decode()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the pty's other side is closed, the command is done
        return b""


def test_dlq_list_is_a_coloured_table_at_a_terminal(filled: Filled) -> None:
    text = at_a_terminal("dlq", "list", "--outbox", str(filled.path))
    assert "\x1b[" in text  # colour
    assert "─" in text  # the rule under the header
    visible = _ANSI.sub("", text)
    assert re.search(r"ID +CREATED +STAGE +REASON +CODE +ROUTE +KEY +MESSAGE", visible)
    fire_row = next(line for line in visible.splitlines() if f" {filled.fire_dl} " in line)
    assert re.search(r"fire +fire_rejected +INVALID_REQUEST +welcome +welcome:e1", fire_row)


def test_outbox_stats_is_coloured_at_a_terminal(filled: Filled) -> None:
    text = at_a_terminal("outbox", "stats", "--outbox", str(filled.path))
    assert "\x1b[" in text
    visible = _ANSI.sub("", text)
    assert re.search(r"deliveries +pending 1, firing 0, fired 1, retry_wait 0, dead 1", visible)
    assert re.search(r"ended runs +failed 2", visible)
    assert "oldest pending  " in visible
    assert re.search(r"fire_rejected +1 +1", visible)  # reason, count, not redriven


def test_json_stays_json_at_a_terminal(filled: Filled) -> None:
    where = ("--outbox", str(filled.path))
    stats = json.loads(at_a_terminal("outbox", "stats", *where, "--json"))
    assert stats["deadLetters"]["total"] == 4
    listed = [
        json.loads(line) for line in at_a_terminal("dlq", "list", *where, "--json").splitlines()
    ]
    assert len(listed) == 4
