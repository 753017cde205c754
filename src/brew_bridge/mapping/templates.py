"""Templates: text with ``{path}`` placeholders (``"{event.first} {event.last}"``).

``{{`` and ``}}`` are literal braces. The placeholder parser is ours (it understands
JMESPath quoting, so ``{headers."x-id"}`` works); rendering never calls ``format``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .expressions import Expression, ExpressionError, compile_expression

__all__ = ["Template", "parse_template", "render_value"]


def render_value(value: Any) -> str:
    """A value as template text: strings as is, JSON for everything else (deterministic)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _placeholder_end(text: str, start: int) -> int | None:
    """Index of the ``}`` closing a placeholder opened just before ``start``."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


@dataclass(frozen=True)
class Template:
    """Text with ``{path}`` placeholders, parsed once."""

    text: str
    parts: tuple[str | Expression, ...]

    @property
    def placeholders(self) -> tuple[Expression, ...]:
        return tuple(p for p in self.parts if isinstance(p, Expression))

    def render(self, context: Any, *, empty_is_missing: bool = False) -> str | Expression:
        """The rendered text, or the first placeholder that is null (or "" when asked).

        May raise ``JMESPathError`` from a placeholder's expression.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.search(context)
            if value is None or (empty_is_missing and value == ""):
                return part
            out.append(render_value(value))
        return "".join(out)


def parse_template(text: str, *, roots: frozenset[str] | None = None) -> Template:
    """Parse ``"{event.a} and {event.b}"`` into literal parts and compiled placeholders.

    ``{{`` / ``}}`` are literal braces. Raises :class:`ExpressionError`.
    """
    parts: list[str | Expression] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            end = _placeholder_end(text, i + 1)
            if end is None:
                raise ExpressionError(
                    f"template {text!r}: '{{' at position {i} is never closed",
                    "close the placeholder with '}', or write '{{' for a literal brace",
                )
            inner = text[i + 1 : end].strip()
            if not inner:
                raise ExpressionError(
                    f"template {text!r}: empty placeholder at position {i}",
                    "put a path inside the braces, e.g. {event.id}",
                )
            try:
                expression = compile_expression(inner, roots=roots)
            except ExpressionError as exc:
                raise ExpressionError(f"template {text!r}: {exc.message}", exc.fix) from None
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(expression)
            i = end + 1
        elif char == "}":
            if text.startswith("}}", i):
                buf.append("}")
                i += 2
                continue
            raise ExpressionError(
                f"template {text!r}: '}}' at position {i} closes nothing",
                "write '}}' for a literal brace",
            )
        else:
            buf.append(char)
            i += 1
    if buf:
        parts.append("".join(buf))
    return Template(text=text, parts=tuple(parts))
