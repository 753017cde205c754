"""Fixtures for the config / transforms / idempotency / routing unit tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from brew_bridge.config import BridgeConfig, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"


@pytest.fixture(scope="session")
def example_config() -> BridgeConfig:
    """config/example.yaml, loaded with an empty environment."""
    return load_config(EXAMPLE, env={})


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "bridge.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
