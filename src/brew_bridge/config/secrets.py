"""The API keys: from the environment, else a mounted file, never from the YAML.

Brew's is ``BREW_API_KEY``, else the file named by ``BREW_API_KEY_FILE``, else by
``brew.api_key_file``; another target's is the variable its ``api_key_env`` names, else
its ``api_key_file``. A key written into the YAML, or set as
``BREW_BRIDGE_BREW__API_KEY``, is refused (and dropped, so the rest of the config is
still checked).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from brew_bridge.config.problems import ENV_PREFIX, Source, problem
from brew_bridge.errors import ConfigProblem

__all__ = [
    "API_KEY_ENV",
    "API_KEY_FILE_ENV",
    "read_api_key",
    "read_target_key",
    "refuse_env_api_key",
    "without_yaml_secrets",
]

API_KEY_ENV = "BREW_API_KEY"
API_KEY_FILE_ENV = "BREW_API_KEY_FILE"


def read_api_key(
    api_key_file: str | None, env: Mapping[str, str], source: Source
) -> tuple[SecretStr | None, list[ConfigProblem]]:
    """BREW_API_KEY, else the file named by BREW_API_KEY_FILE, else ``api_key_file``."""
    value = env.get(API_KEY_ENV)
    if value is not None:
        if not value.strip():
            return None, [
                ConfigProblem(
                    "environment", API_KEY_ENV, "is set but empty", "set it to the Brew API key"
                )
            ]
        return SecretStr(value.strip()), []
    from_env = env.get(API_KEY_FILE_ENV)
    path = from_env or api_key_file
    if not path:
        return None, []

    def unreadable(message: str) -> ConfigProblem:
        if from_env:
            return ConfigProblem("environment", API_KEY_FILE_ENV, message, "mount the secret there")
        fix = f"mount the secret there, or set {API_KEY_ENV}"
        return problem(source, ("brew", "api_key_file"), message, fix)

    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return None, [unreadable(f"cannot read the API key file {path}: {reason}")]
    if not text:
        return None, [unreadable(f"the API key file {path} is empty")]
    return SecretStr(text), []


def read_target_key(
    name: str, api_key_env: str, api_key_file: str | None, env: Mapping[str, str], source: Source
) -> tuple[SecretStr | None, list[ConfigProblem]]:
    """The key of ``targets.<name>``: the variable ``api_key_env``, else ``api_key_file``."""
    value = env.get(api_key_env)
    if value is not None:
        if not value.strip():
            fix = f"set it to the API key of targets.{name}"
            return None, [ConfigProblem("environment", api_key_env, "is set but empty", fix)]
        return SecretStr(value.strip()), []
    if not api_key_file:
        return None, []
    at = ("targets", name, "api_key_file")
    fix = f"mount the secret there, or set {api_key_env}"
    try:
        text = Path(api_key_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        message = f"cannot read the API key file {api_key_file}: {reason}"
        return None, [problem(source, at, message, fix)]
    if not text:
        return None, [problem(source, at, f"the API key file {api_key_file} is empty", fix)]
    return SecretStr(text), []


def refuse_env_api_key(bridge_env: MutableMapping[str, str]) -> list[ConfigProblem]:
    """Refuse (and drop) a key set as ``BREW_BRIDGE_BREW__API_KEY``."""
    if bridge_env.pop(f"{ENV_PREFIX}BREW__API_KEY", None) is None:
        return []
    return [
        ConfigProblem(
            "environment",
            f"{ENV_PREFIX}BREW__API_KEY",
            "the Brew API key is not read from BREW_BRIDGE_* variables",
            f"set {API_KEY_ENV} or {API_KEY_FILE_ENV} instead",
        )
    ]


def without_yaml_secrets(
    data: dict[str, Any], source: Source, problems: list[ConfigProblem]
) -> dict[str, Any]:
    """Refuse (and drop, so validation goes on) an API key written into the YAML."""
    fix = f"set {API_KEY_ENV} or brew.api_key_file"
    message = "the Brew API key is never read from the config file"
    data = dict(data)
    if "api_key" in data:
        problems.append(problem(source, ("api_key",), message, fix))
        del data["api_key"]
    brew = data.get("brew")
    if isinstance(brew, dict) and "api_key" in brew:
        problems.append(problem(source, ("brew", "api_key"), message, fix))
        data["brew"] = {k: v for k, v in brew.items() if k != "api_key"}
    targets = data.get("targets")
    if isinstance(targets, dict):
        kept = {}
        for name, entry in targets.items():
            if isinstance(entry, dict) and "api_key" in entry:
                problems.append(
                    problem(
                        source,
                        ("targets", name, "api_key"),
                        "an API key is never read from the config file",
                        f"set the variable targets.{name}.api_key_env names, or api_key_file",
                    )
                )
                entry = {k: v for k, v in entry.items() if k != "api_key"}
            kept[name] = entry
        data["targets"] = kept
    return data
