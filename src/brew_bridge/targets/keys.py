"""A target's API key, read fresh enough that a rotated key is picked up without a restart.

From an environment variable, else a file (a mounted Kubernetes secret), never from the
YAML. The file is re-read when it changes (its mtime or size), so a remounted secret
takes effect at the next request, in particular at the next probe of an open auth
circuit. Every key read is hidden from every log line, whatever its shape.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.observe.logs import hide

__all__ = ["KeySource"]


class KeySource:
    """Call it for the key now (``""`` when the file became unreadable and none was read).

    ``env_key``: the environment variable's value, which wins; ``path``: the file to read
    otherwise; ``loaded``: what the config already read from either. ``missing``: the
    problem to raise when there is no key at all.
    """

    def __init__(
        self,
        *,
        env_key: str | None,
        path: str | None,
        loaded: str | None,
        missing: ConfigProblem,
    ) -> None:
        self._env_key = (env_key or "").strip() or None
        self._path = Path(path) if path and self._env_key is None else None
        self._cached = loaded
        self._stamp: tuple[int, int] | None = None
        for key in (self._env_key, self._cached):
            if key is not None:
                hide(key)
        if self._env_key is None and self._path is None and self._cached is None:
            raise ConfigError([missing])

    def __call__(self) -> str:
        if self._env_key is not None:
            return self._env_key
        if self._path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                st = self._path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp != self._stamp:
                    text = self._path.read_text(encoding="utf-8").strip()
                    if text:
                        hide(text)
                        self._cached = text
                    self._stamp = stamp
        return self._cached or ""
