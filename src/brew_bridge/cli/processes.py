"""The processes a command starts and must never leave behind (``brew-bridge dev``).

Each child leads a process group of its own: a Ctrl-C at the terminal reaches only the
parent, which stops the children in the reverse order of their start (the bridge
before the simulators it calls), each with SIGTERM and its grace period, then SIGKILL;
the whole group, so what a child started itself (the bridge's routing process) goes
too. SIGINT and SIGTERM become :class:`Interrupted`, held back while a child is being
started so no child can be started and not recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = ["Children", "Interrupted", "Stopped"]


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; ``exit_code`` is what a shell reports (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class Stopped:
    """One thing :meth:`Children.stop_all` stopped: its title and its process id."""

    title: str
    pid: int


# Stops one thing; returns its pid when it was running, else None.
Stop = Callable[[], int | None]


class Children:
    """Started children, stopped together. Use as a context manager: inside it SIGINT
    and SIGTERM raise :class:`Interrupted`; on leaving, every child still running is
    stopped and the handlers before it are back."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Stop]] = []
        self.stopped: list[Stopped] = []  # everything stop_all found running, in order
        self._pending: int | None = None
        self._holding = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Children:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.stop_all()
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._holding:
            self._pending = signum
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def holding_signals(self) -> Iterator[None]:
        """Signals wait until the block ends (then raise): for steps that must not be
        cut in half, like starting a child and recording it."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            if self._pending is not None:
                signum, self._pending = self._pending, None
                raise Interrupted(signum)

    def start(
        self, title: str, argv: Sequence[str], *, grace: float = 5.0, **popen: Any
    ) -> subprocess.Popen[bytes]:
        with self.holding_signals():
            proc: subprocess.Popen[bytes] = subprocess.Popen(  # noqa: S603 -- our own CLI
                argv, process_group=0, stdin=subprocess.DEVNULL, **popen
            )
            self._stops.append((title, lambda: _stop(proc, grace)))
        return proc

    def adopt(self, title: str, stop: Stop) -> None:
        """Stop something else with the children, in the same order (a broker this
        process runs through a handle of its own): ``stop`` returns its pid when it was
        running. Adopt it before starting it, so an interrupted start is stopped too."""
        self._stops.append((title, stop))

    def stop_all(self) -> list[Stopped]:
        """Stop everything, newest first; returns what was still running. Signals wait
        meanwhile: a second Ctrl-C does not cut the stopping short."""
        self._holding = True
        try:
            stopped: list[Stopped] = []
            failure: Exception | None = None
            for title, stop in reversed(self._stops):
                try:
                    pid = stop()
                except Exception as exc:  # the others are stopped all the same
                    failure = failure or exc
                    continue
                if pid is not None:
                    stopped.append(Stopped(title, pid))
            self._stops.clear()
            self.stopped += stopped
            if failure is not None:
                raise failure
        finally:
            self._holding = False
            self._pending = None  # already stopping: nothing more to do for it
        return stopped


def _stop(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """Stop a child's process group (SIGTERM, ``grace`` seconds, SIGKILL); its pid when
    its leader was still running."""
    running = proc.poll() is None
    if running:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    # Whatever the leader started and left behind goes with it.
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.pid if running else None


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
