"""The Brew API key, read fresh enough that a rotated key is picked up without a restart."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from brew_bridge.config import API_KEY_ENV, API_KEY_FILE_ENV, BridgeConfig
from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.observe.logs import hide

__all__ = ["ApiKeySource"]


class ApiKeySource:
    """The Brew API key, read fresh enough that a rotated key is picked up without a restart.

    Same precedence as :func:`~brew_bridge.config.load_config`: ``BREW_API_KEY``, else the
    file named by ``BREW_API_KEY_FILE`` or ``brew.api_key_file``. The file is re-read when
    it changes (its mtime or size), so a remounted Kubernetes secret takes effect at the
    next request, in particular at the next probe of an open auth circuit.
    """

    def __init__(self, config: BridgeConfig, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self._env_key = (environ.get(API_KEY_ENV) or "").strip() or None
        file = environ.get(API_KEY_FILE_ENV) or config.brew.api_key_file
        self._path = Path(file) if file and self._env_key is None else None
        loaded = config.brew.api_key
        self._cached = loaded.get_secret_value() if loaded is not None else None
        self._stamp: tuple[int, int] | None = None
        for key in (self._env_key, self._cached):
            if key is not None:
                hide(key)  # from every log line, whatever its shape
        if self._env_key is None and self._path is None and self._cached is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        "environment",
                        API_KEY_ENV,
                        "no Brew API key: the worker cannot call Brew without one",
                        f"set {API_KEY_ENV}, or {API_KEY_FILE_ENV} / brew.api_key_file "
                        "to a file holding the key",
                    )
                ]
            )

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
