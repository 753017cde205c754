"""Real faults for tests: a small filesystem that can be filled.

``small_disk`` mounts a tmpfs (root only: Linux, CI here); it raises
:class:`CannotMount` with the reason where that is not possible, so a test can skip
saying why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CannotMount", "fill", "small_disk"]


class CannotMount(RuntimeError):
    """A tmpfs cannot be mounted here (not root, no mount(8), a container without it)."""


@contextmanager
def small_disk(where: Path, size_mb: int = 16) -> Iterator[Path]:
    """A ``size_mb`` tmpfs mounted at ``where`` (created), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(  # noqa: S603 -- fixed arguments, no shell
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise CannotMount(str(exc)) from exc
    if done.returncode != 0:
        raise CannotMount(done.stderr.strip() or f"mount exited with {done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)  # noqa: S603, S607


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until no space is left; delete it to free the disk."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler
