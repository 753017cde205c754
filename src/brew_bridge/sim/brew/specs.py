"""Small readers for the simulator's settings (seed file and admin bodies).

The seed file and the ``/_sim/*`` admin bodies hold the same things, so both are read by
the same functions, and both fail the same way: a :class:`SpecError` naming the key path,
what is wrong and what to write instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SpecError", "get_bool", "get_number", "get_str", "reject_unknown", "require_mapping"]


class SpecError(ValueError):
    """A simulator setting is invalid: ``path`` says where, ``fix`` what to write."""

    def __init__(self, path: str, message: str, fix: str) -> None:
        self.path = path
        self.problem = message
        self.fix = fix
        super().__init__(f"{path}: {message} (fix: {fix})")


def require_mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping, got {type(value).__name__}", "write key: value")
    return value


def reject_unknown(spec: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in spec:
        if key not in allowed:
            raise SpecError(
                f"{path}.{key}", "unknown key", f"use one of: {', '.join(sorted(allowed))}"
            )


def get_number(
    spec: Mapping[str, Any],
    key: str,
    path: str,
    default: float,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{path}.{key}", f"expected a number, got {value!r}", "write a number")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum:g}"
        raise SpecError(f"{path}.{key}", f"{value!r} is out of range", f"use >= {minimum:g}{upper}")
    return float(value)


def get_str(spec: Mapping[str, Any], key: str, path: str, default: str | None) -> str | None:
    value = spec.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"{path}.{key}", f"expected a string, got {value!r}", "quote the value")
    return value


def get_bool(spec: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}", f"expected true or false, got {value!r}", "write true")
    return value
