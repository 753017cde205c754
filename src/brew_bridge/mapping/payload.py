"""Compile a route's payload mapping, once, into a pure callable that never raises.

Routes describe the payload their action needs *declaratively* (``payload:`` in the
config): each field is a path (with fallbacks), a literal value, a template or nested
fields, optionally mapped over an array (``each``), defaulted and coerced to a type.

A compiled mapping returns :class:`Mapped` or a :class:`MappingFailure` naming the route,
the payload field and the expression; it never raises, whatever JSON it is given.
A field whose value is null or missing (after fallbacks and ``default``) is left out of
the payload, so the action's fallback applies and a required field is reported by the
payload check as missing, naming the field.

The field specs are read through :class:`PayloadField`, which the config's ``FieldSpec``
satisfies: this package never imports the config (the config imports it, to validate
expressions while the file is loaded).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from jmespath.exceptions import JMESPathError

from .coercion import converter, describe_value
from .expressions import (
    CONTEXT_ROOTS,
    ITEM_ROOTS,
    Expression,
    ExpressionError,
    compile_expression,
)
from .templates import Template, parse_template

__all__ = [
    "CompiledMapping",
    "Mapped",
    "MappingFailure",
    "PayloadField",
    "compile_mapping",
]


class PayloadField(Protocol):
    """How one payload field is made: what the compiler reads from its spec.

    Exactly one of ``path``, ``value``, ``template``, ``fields`` is the source; ``each``
    maps every element of the array at ``path``; ``has_default`` says whether ``default``
    was written at all.
    """

    @property
    def path(self) -> Sequence[str] | None: ...
    @property
    def value(self) -> Any: ...
    @property
    def template(self) -> Sequence[str] | None: ...
    @property
    def fields(self) -> Mapping[str, PayloadField] | None: ...
    @property
    def each(self) -> PayloadField | None: ...
    @property
    def default(self) -> Any: ...
    @property
    def has_default(self) -> bool: ...
    @property
    def type(self) -> str | None: ...
    @property
    def exponent(self) -> int: ...
    @property
    def places(self) -> int | None: ...
    @property
    def epoch_unit(self) -> str: ...


class _Missing:
    """The absence of a value (distinct from a JSON null literal the config wrote)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


@dataclass(frozen=True)
class Mapped:
    """The payload a route produced for one event (nulls left out)."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class MappingFailure:
    """Why a route could not map an event: the route, the payload field and the expression."""

    route: str
    field: str
    expression: str | None
    message: str

    def describe(self) -> str:
        where = f"route {self.route!r}: field {self.field!r}"
        if self.expression is not None:
            where += f" (expression {self.expression!r})"
        return f"{where}: {self.message}"


class _FieldError(Exception):
    def __init__(self, field: str, expression: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.expression = expression
        self.message = message


_Node = Callable[[Mapping[str, Any]], Any]  # returns a value or _MISSING; raises _FieldError


def _search_failed(expression: Expression, field: str, exc: Exception) -> _FieldError:
    if isinstance(exc, JMESPathError):
        return _FieldError(field, expression.text, str(exc).replace("\n", " "))
    if isinstance(exc, RecursionError):
        return _FieldError(field, expression.text, "value nested too deeply")
    return _FieldError(field, expression.text, f"{type(exc).__name__}: {exc}")


def _first_path(paths: Sequence[Expression], field: str) -> _Node:
    if len(paths) == 1:  # the common case, without the loop
        (path,) = paths
        search = path.search

        def one(context: Mapping[str, Any]) -> Any:
            try:
                value = search(context)
            except Exception as exc:  # a mapping must never raise, whatever the data
                raise _search_failed(path, field, exc) from None
            return _MISSING if value is None else value

        return one

    def node(context: Mapping[str, Any]) -> Any:
        for path in paths:
            try:
                value = path.search(context)
            except Exception as exc:  # a mapping must never raise, whatever the data
                raise _search_failed(path, field, exc) from None
            if value is not None:
                return value
        return _MISSING

    return node


def _literal(value: Any) -> _Node:
    if isinstance(value, dict | list):
        return lambda _context: copy.deepcopy(value)  # events must never share a container
    return lambda _context: value


def _first_template(templates: Sequence[Template], field: str) -> _Node:
    def node(context: Mapping[str, Any]) -> Any:
        for template in templates:
            try:
                text = template.render(context)
            except JMESPathError as exc:
                raise _FieldError(field, template.text, str(exc).replace("\n", " ")) from None
            except Exception as exc:  # a mapping must never raise, whatever the data
                raise _FieldError(field, template.text, f"{type(exc).__name__}: {exc}") from None
            if isinstance(text, str):
                return text
        return _MISSING

    return node


def _object(children: Sequence[tuple[str, _Node]]) -> _Node:
    def node(context: Mapping[str, Any]) -> Any:
        out: dict[str, Any] = {}
        for name, child in children:
            value = child(context)
            if value is not _MISSING:
                out[name] = value
        return out

    return node


def _each(paths: Sequence[Expression], element: _Node, field: str) -> _Node:
    source = _first_path(paths, field)

    def node(context: Mapping[str, Any]) -> Any:
        items = source(context)
        if items is _MISSING:
            return _MISSING
        if not isinstance(items, list):
            raise _FieldError(
                field, paths[0].text, f"each: needs an array, got {describe_value(items)}"
            )
        out: list[Any] = []
        scope = dict(context)
        for index, item in enumerate(items):
            scope["item"] = item
            scope["index"] = index
            value = element(scope)
            if value is not _MISSING:
                out.append(value)
        return out

    return node


def _with_default_and_type(
    inner: _Node, spec: PayloadField, field: str, expression: str | None
) -> _Node:
    has_default = spec.has_default
    default = spec.default
    type_ = spec.type
    if not has_default and type_ is None:
        return inner
    convert = (
        converter(type_, exponent=spec.exponent, places=spec.places, epoch_unit=spec.epoch_unit)
        if type_ is not None
        else None
    )

    def node(context: Mapping[str, Any]) -> Any:
        value = inner(context)
        if value is _MISSING or value is None:
            # default is written as the final value: it is not converted.
            return copy.deepcopy(default) if has_default and default is not None else _MISSING
        if convert is None:
            return value
        try:
            return convert(value)
        except ValueError as exc:
            raise _FieldError(field, expression, str(exc)) from None

    return node


def _compiled(
    loc: tuple[str | int, ...], compile_one: Callable[[str], Any], texts: Sequence[str]
) -> list[Any]:
    out = []
    for index, text in enumerate(texts):
        try:
            out.append(compile_one(text))
        except ExpressionError as exc:
            raise ExpressionError(exc.message, exc.fix, (*loc, index)) from None
    return out


def _compile_field(
    spec: PayloadField, field: str, loc: tuple[str | int, ...], roots: frozenset[str]
) -> _Node:
    paths: list[Expression] = _compiled(
        (*loc, "path"), lambda t: compile_expression(t, roots=roots), spec.path or ()
    )
    expression = " | ".join(p.text for p in paths) if paths else None
    inner: _Node
    if spec.each is not None:
        element = _compile_field(spec.each, f"{field}[]", (*loc, "each"), roots | ITEM_ROOTS)
        inner = _each(paths, element, field)
    elif paths:
        inner = _first_path(paths, field)
    elif spec.template is not None:
        templates: list[Template] = _compiled(
            (*loc, "template"), lambda t: parse_template(t, roots=roots), spec.template
        )
        expression = " | ".join(t.text for t in templates)
        inner = _first_template(templates, field)
    elif spec.fields is not None:
        inner = _object(
            [
                (name, _compile_field(child, f"{field}.{name}", (*loc, "fields", name), roots))
                for name, child in spec.fields.items()
            ]
        )
    else:
        inner = _literal(spec.value)
    return _with_default_and_type(inner, spec, field, expression)


class CompiledMapping:
    """A route's payload mapping, compiled once; calling it is pure and never raises."""

    __slots__ = ("_fields", "route")

    def __init__(self, route: str, fields: Sequence[tuple[str, _Node]]) -> None:
        self.route = route
        self._fields = tuple(fields)

    def __call__(self, context: Mapping[str, Any]) -> Mapped | MappingFailure:
        payload: dict[str, Any] = {}
        try:
            for name, node in self._fields:
                value = node(context)
                if value is not _MISSING:
                    payload[name] = value
        except _FieldError as exc:
            return MappingFailure(self.route, exc.field, exc.expression, exc.message)
        except RecursionError:
            return MappingFailure(self.route, "", None, "event nested too deeply to map")
        return Mapped(payload)


def compile_mapping(route: str, fields: Mapping[str, PayloadField]) -> CompiledMapping:
    """Compile a route's ``payload:`` mapping.

    Raises :class:`ExpressionError` whose ``loc`` is relative to the payload mapping, e.g.
    ``("lineItems", "each", "fields", "sku", "path", 0)``; ``item`` / ``index`` may only
    be used inside ``each``.
    """
    return CompiledMapping(
        route,
        [
            (name, _compile_field(spec, name, (name,), CONTEXT_ROOTS))
            for name, spec in fields.items()
        ],
    )
