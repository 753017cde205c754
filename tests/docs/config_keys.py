"""Every key of the config, as ``(section, key)`` pairs, walked from the pydantic models
(the one place the config is defined): what the README's reference must list."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from brew_bridge.config import BridgeConfig


def _models(annotation: Any) -> list[type[BaseModel]]:
    found, stack = [], [annotation]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            found.append(t)
        else:
            stack.extend(typing.get_args(t))
    return found


def _container(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _container(typing.get_args(annotation)[0])
    return origin


def config_keys(
    model: type[BaseModel] = BridgeConfig, section: str = ""
) -> Iterator[tuple[str, str]]:
    """``(section, key)``: ``section`` is where the key sits (``kafka``,
    ``webhooks.sources.<name>``, ``routes[]``; ``""`` at the top)."""
    for name, field in model.model_fields.items():
        if field.exclude:  # secrets are never read from the file
            continue
        inner = _models(field.annotation)
        origin = _container(field.annotation)
        here = f"{section}.{name}" if section else name
        optional = type(None) in typing.get_args(field.annotation)
        if inner and origin is dict:
            yield section, name
            for sub in inner:
                yield from config_keys(sub, f"{here}.<name>")
        elif inner and origin is list:
            yield section, name
            for sub in inner:
                yield from config_keys(sub, f"{here}[]")
        elif inner and len(inner) == 1 and not optional and origin in (None, types.UnionType):
            yield from config_keys(inner[0], here)
        else:
            yield section, name


def reference_rows() -> list[str]:
    """The README's reference table, one row per section: ``python tests/docs/config_keys.py``
    prints it after a key is added."""
    sections: dict[str, list[str]] = {}
    for section, key in config_keys():
        keys = sections.setdefault(section or "(top level)", [])
        if f"`{key}`" not in keys:
            keys.append(f"`{key}`")
    return [f"| `{section}` | {', '.join(keys)} |" for section, keys in sections.items()]


if __name__ == "__main__":
    print("\n".join(reference_rows()))
