"""The package's promised names: re-exported, sorted, and nothing public left out."""

from __future__ import annotations

import brew_bridge
import brew_bridge.errors


def test_all_is_sorted_and_unique() -> None:
    assert brew_bridge.__all__ == sorted(set(brew_bridge.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in brew_bridge.__all__ if not hasattr(brew_bridge, name)]
    assert missing == []


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name in vars(brew_bridge)
        if not name.startswith("_")
        and not isinstance(getattr(brew_bridge, name), type(brew_bridge))
    }
    assert public <= set(brew_bridge.__all__)


def test_every_error_is_exported_and_in_the_tree() -> None:
    """errors.py draws the tree in its docstring; every error class must be in it."""
    doc = brew_bridge.errors.__doc__ or ""
    for name in brew_bridge.errors.__all__:
        cls = getattr(brew_bridge.errors, name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            assert name in brew_bridge.__all__, name
            assert name in doc, f"{name} is missing from the tree in errors.py"
            assert issubclass(cls, brew_bridge.BridgeError), name
