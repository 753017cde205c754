"""The Idempotency-Key of a delivery: derived from the event alone, so a retry, a restart,
a rebalance or a redrive of the same event always sends the same key and Brew (and the
outbox, one row per route and key) refuses to act twice.

A key is a template over the record context (the same context as payload paths:
``event``, ``headers``, ``topic``, ``partition``, ``offset``, ``key``, ``route``). A route
may list several templates; the first one whose placeholders are all present (not null,
not "") wins. The default is::

    ["{route}:{event.id}", "{route}:{topic}:{partition}:{offset}"]

with ``event.id`` replaced by the route's ``id_path``. The record coordinates are the
weaker fallback: they are unique per record but a producer that re-publishes the same
event gets a new offset, hence a new key, and the event may be delivered twice.

Every template must contain ``{route}`` (one event feeding two triggers needs two keys:
Brew's keys are not scoped per trigger) and at least one other placeholder (or every
event of the route would share one key). Keys are at most 100 characters of printable
ASCII (what Brew and HTTP headers accept); anything longer or other becomes a readable
prefix plus the SHA-256 of the whole key. Time and randomness never enter a key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jmespath.exceptions import JMESPathError

from .expressions import (
    CONTEXT_ROOTS,
    Expression,
    ExpressionError,
    compile_expression,
)
from .templates import Template, parse_template, render_value

__all__ = [
    "COORDINATES_TEMPLATE",
    "MAX_KEY_LENGTH",
    "KeyDeriver",
    "KeyFailure",
    "bound_key",
    "compile_key",
    "default_key_templates",
    "parse_key_template",
]

MAX_KEY_LENGTH: Final = 100
COORDINATES_TEMPLATE: Final = "{route}:{topic}:{partition}:{offset}"
_HEX_LENGTH: Final = 64
_PREFIX_LENGTH: Final = MAX_KEY_LENGTH - _HEX_LENGTH - 1  # prefix ":" sha256-hex
_SAFE: Final = re.compile(r"[\x21-\x7e]+")
_UNSAFE: Final = re.compile(r"[^\x21-\x7e]+")


def bound_key(raw: str) -> str:
    """``raw`` when it is 1..100 printable ASCII characters; otherwise a stable hash form.

    The hash form keeps the first characters that are safe (usually the route name) so a
    human can still tell what the key is for: ``<prefix>:<sha256 hex>``, at most 100.
    """
    if len(raw) <= MAX_KEY_LENGTH and _SAFE.fullmatch(raw):
        return raw
    # surrogatepass: decoded JSON may hold lone surrogates; the key must still be stable.
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    prefix = _UNSAFE.sub("", raw)[:_PREFIX_LENGTH]
    return f"{prefix}:{digest}" if prefix else digest


def default_key_templates(id_path: str = "event.id") -> tuple[str, str]:
    """The default key templates for a route whose events carry their id at ``id_path``."""
    return (f"{{route}}:{{{id_path}}}", COORDINATES_TEMPLATE)


def parse_key_template(text: str) -> Template:
    """Parse and check a key template. Raises :class:`ExpressionError` with the fix."""
    template = parse_template(text, roots=CONTEXT_ROOTS)
    names = [p.text.strip() for p in template.placeholders]
    if "route" not in names:
        raise ExpressionError(
            f"key template {text!r} has no {{route}} placeholder",
            "include {route}, e.g. '{route}:{event.id}': one event feeding two triggers "
            "needs two keys",
        )
    if all(name == "route" for name in names):
        raise ExpressionError(
            f"key template {text!r} takes nothing from the event: every event would share a key",
            "add the event's own id, e.g. '{route}:{event.id}'",
        )
    return template


@dataclass(frozen=True)
class KeyFailure:
    """A key template that could not be rendered for this event (a custom template's
    placeholder is missing, or its expression failed on this data)."""

    expression: str
    message: str


class KeyDeriver:
    """A route's compiled key templates and id path; calling it is pure and never raises."""

    __slots__ = ("_id_path", "_templates", "route", "templates")

    def __init__(self, route: str, templates: Sequence[Template], id_path: Expression) -> None:
        self.route = route
        self.templates = tuple(t.text for t in templates)
        self._templates = tuple(templates)
        self._id_path = id_path

    def __call__(self, context: Mapping[str, Any]) -> str | KeyFailure:
        """The Idempotency-Key for the record in ``context`` (which includes ``route``)."""
        missing: Expression | None = None
        for template in self._templates:
            try:
                rendered = template.render(context, empty_is_missing=True)
            except JMESPathError as exc:
                return KeyFailure(template.text, str(exc).replace("\n", " "))
            except Exception as exc:  # deriving a key must never raise, whatever the data
                return KeyFailure(template.text, f"{type(exc).__name__}: {exc}")
            if isinstance(rendered, str):
                return bound_key(rendered)
            missing = rendered if missing is None else missing
        placeholder = missing.text if missing is not None else "?"
        return KeyFailure(
            self.templates[-1],
            f"idempotency key: placeholder {{{placeholder}}} is missing or empty in this event",
        )

    def event_id(self, context: Mapping[str, Any]) -> str | None:
        """The event's own id (``id_path``) as text, or None when it has none."""
        try:
            value = self._id_path.search(context)
        except Exception:  # an id we cannot read is no id; the key falls back
            return None
        if value is None or value == "":
            return None
        return render_value(value)


def compile_key(
    route: str, templates: Sequence[str] | None = None, *, id_path: str = "event.id"
) -> KeyDeriver:
    """Compile a route's key templates (default: :func:`default_key_templates`).

    Raises :class:`ExpressionError` whose ``loc`` is the template's index.
    """
    texts = tuple(templates) if templates else default_key_templates(id_path)
    parsed: list[Template] = []
    for index, text in enumerate(texts):
        try:
            parsed.append(parse_key_template(text))
        except ExpressionError as exc:
            raise ExpressionError(exc.message, exc.fix, (index,)) from None
    return KeyDeriver(route, parsed, compile_expression(id_path, roots=CONTEXT_ROOTS))
