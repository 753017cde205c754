"""The Brew API key: only from BREW_API_KEY or a mounted file; never from YAML; never shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.config import load_config
from brew_bridge.errors import ConfigError

SECRET = "brew_live_9f8e7d6c5b4a3928"

BASE = """
triggers:
  tri_welcome:
    payload_schema:
      type: object
      fields: [{key: email, type: string, required: true}]
routes:
  - name: welcome
    topics: [signups]
    trigger: tri_welcome
    payload: {email: event.email}
"""

WriteConfig = Callable[[str], Path]


def test_key_from_the_environment(write_config: WriteConfig) -> None:
    config = load_config(write_config(BASE), env={"BREW_API_KEY": f" {SECRET}\n"})
    assert config.brew.api_key is not None
    assert config.brew.api_key.get_secret_value() == SECRET


def test_key_from_the_configured_file(write_config: WriteConfig, tmp_path: Path) -> None:
    secret_file = tmp_path / "brew-api-key"
    secret_file.write_text(SECRET + "\n")
    config = load_config(write_config(BASE + f"brew:\n  api_key_file: {secret_file}\n"), env={})
    assert config.brew.api_key is not None
    assert config.brew.api_key.get_secret_value() == SECRET


def test_key_file_named_by_the_environment(write_config: WriteConfig, tmp_path: Path) -> None:
    secret_file = tmp_path / "mounted"
    secret_file.write_text(SECRET)
    config = load_config(write_config(BASE), env={"BREW_API_KEY_FILE": str(secret_file)})
    assert config.brew.api_key is not None
    assert config.brew.api_key.get_secret_value() == SECRET


def test_environment_key_wins_over_the_file(write_config: WriteConfig, tmp_path: Path) -> None:
    secret_file = tmp_path / "mounted"
    secret_file.write_text("brew_from_file_0000")
    path = write_config(BASE + f"brew:\n  api_key_file: {secret_file}\n")
    config = load_config(path, env={"BREW_API_KEY": SECRET})
    assert config.brew.api_key is not None
    assert config.brew.api_key.get_secret_value() == SECRET


def test_no_key_is_valid_for_check_and_map(write_config: WriteConfig) -> None:
    assert load_config(write_config(BASE), env={}).brew.api_key is None


def test_unreadable_key_file(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(BASE + f"brew:\n  api_key_file: {tmp_path / 'absent'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.key_path == "brew.api_key_file"
    assert "cannot read the API key file" in problem.message
    assert "BREW_API_KEY" in problem.fix


def test_empty_key_file(write_config: WriteConfig, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(BASE), env={"BREW_API_KEY_FILE": str(empty)})
    (problem,) = info.value.problems
    assert (problem.file, problem.key_path) == ("environment", "BREW_API_KEY_FILE")
    assert "is empty" in problem.message


@pytest.mark.parametrize("where", ["brew:\n  api_key: {}\n", "api_key: {}\n"])
def test_key_in_yaml_is_refused_and_not_repeated(write_config: WriteConfig, where: str) -> None:
    path = write_config(BASE + where.format(SECRET))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.message == "the Brew API key is never read from the config file"
    assert problem.fix == "set BREW_API_KEY or brew.api_key_file"
    assert problem.line == len(path.read_text().splitlines())  # the api_key line
    assert SECRET not in str(info.value)


def test_key_in_bridge_variables_is_refused(write_config: WriteConfig) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(BASE), env={"BREW_BRIDGE_BREW__API_KEY": SECRET})
    (problem,) = info.value.problems
    assert problem.key_path == "BREW_BRIDGE_BREW__API_KEY"
    assert "BREW_API_KEY" in problem.fix
    assert SECRET not in str(info.value)


def test_key_never_shown(write_config: WriteConfig) -> None:
    config = load_config(write_config(BASE), env={"BREW_API_KEY": SECRET})
    for text in (
        repr(config),
        str(config),
        repr(config.brew),
        str(config.brew.api_key),
        config.model_dump_json(),
        str(config.model_dump()),
    ):
        assert SECRET not in text


def test_key_not_in_errors_of_a_broken_config(write_config: WriteConfig) -> None:
    path = write_config(BASE + "server:\n  port: eighty\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"BREW_API_KEY": SECRET})
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.problems)
