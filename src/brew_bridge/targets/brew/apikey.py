"""The Brew API key: ``BREW_API_KEY``, else ``BREW_API_KEY_FILE`` or ``brew.api_key_file``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from brew_bridge.config import API_KEY_ENV, API_KEY_FILE_ENV, BridgeConfig
from brew_bridge.errors import ConfigProblem
from brew_bridge.targets.keys import KeySource

__all__ = ["brew_api_key"]


def brew_api_key(config: BridgeConfig, env: Mapping[str, str] | None = None) -> KeySource:
    """The Brew key with the same precedence as :func:`~brew_bridge.config.load_config`."""
    environ = os.environ if env is None else env
    loaded = config.brew.api_key
    return KeySource(
        env_key=environ.get(API_KEY_ENV),
        path=environ.get(API_KEY_FILE_ENV) or config.brew.api_key_file,
        loaded=loaded.get_secret_value() if loaded is not None else None,
        missing=ConfigProblem(
            "environment",
            API_KEY_ENV,
            "no Brew API key: the worker cannot call Brew without one",
            f"set {API_KEY_ENV}, or {API_KEY_FILE_ENV} / brew.api_key_file "
            "to a file holding the key",
        ),
    )
