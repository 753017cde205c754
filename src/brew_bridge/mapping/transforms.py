"""Compile a route's payload mapping, once, into a pure callable that never raises.

Routes describe the payload a Brew trigger needs *declaratively* (``payload:`` in the
config); nothing in a config is ever executed as code: no ``eval``, no Jinja, no
``str.format`` on user text. The pieces:

- **paths** are JMESPath expressions over the *context* of one record::

      {"event": <decoded JSON value>, "headers": {name (lower case): str},
       "topic": str, "partition": int, "offset": int, "key": str | None, "route": str}

  plus ``item`` / ``index`` inside an ``each:`` sub-mapping. Expressions of the common
  shapes (field names and list indexes such as ``event.data.items[0].sku``, and ``==`` /
  ``!=`` between those and literals) skip the JMESPath interpreter: they compile to
  closures that return exactly what it would (property-tested against jmespath).
- **templates** are text with ``{path}`` placeholders (``"{event.first} {event.last}"``);
  ``{{`` and ``}}`` are literal braces. The placeholder parser is ours (it understands
  JMESPath quoting, so ``{headers."x-id"}`` works); rendering never calls ``format``.
- **coercion** to string, int, float, bool, ISO date / datetime, and decimal (minor
  units such as Stripe's ``amount: 2900`` with ``exponent: 2`` become ``"29.00"``).

A compiled mapping returns :class:`Mapped` or a :class:`MappingFailure` naming the route,
the payload field and the expression; it never raises, whatever JSON it is given.
A field whose value is null or missing (after fallbacks and ``default``) is left out of
the payload, so the trigger's ``fallbackValue`` applies and a required field is reported
by the payloadSchema check as missing, naming the field.

This module must not import :mod:`brew_bridge.config` at run time: the config models
use its parsers to validate expressions while the file is loaded.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError
from jmespath.functions import Functions
from jmespath.visitor import TreeInterpreter

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

    from brew_bridge.config import FieldSpec

__all__ = [
    "CONTEXT_ROOTS",
    "ITEM_ROOTS",
    "CompiledMapping",
    "Expression",
    "ExpressionError",
    "Mapped",
    "MappingFailure",
    "Template",
    "coerce",
    "compile_expression",
    "compile_mapping",
    "is_truthy",
    "parse_template",
    "render_value",
]

# Names a path may start with: the record context, and inside ``each`` the element.
CONTEXT_ROOTS: Final = frozenset(
    {"event", "headers", "topic", "partition", "offset", "key", "route"}
)
ITEM_ROOTS: Final = frozenset({"item", "index"})

_SHOWN_CHARS = 60  # values quoted in error messages are cut to this length


class ExpressionError(ValueError):
    """An expression or template in the config cannot be compiled; says what to write instead.

    ``loc`` is where it sits, relative to what was being compiled (e.g. a route's payload).
    """

    def __init__(self, message: str, fix: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.loc = loc


class _Missing:
    """The absence of a value (distinct from a JSON null literal the config wrote)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression. ``search`` may raise ``JMESPathError`` on bad data."""

    text: str
    search: Callable[[Any], Any]


class _Interpreter(TreeInterpreter):
    """jmespath's interpreter with the spec's rule for ``<``, ``<=``, ``>``, ``>=``: operands
    that are not both numbers or both strings give null. (jmespath 1.1 raises TypeError
    for a string against a number, so ``event.amount > `100``` would fail, not be false.)
    """

    _ORDERING: Final = frozenset({"lt", "lte", "gt", "gte"})

    def visit_comparator(self, node: _TreeNode, value: Any) -> Any:
        if node["value"] not in self._ORDERING:
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (left, right))
        strings = isinstance(left, str) and isinstance(right, str)
        if not (numbers or strings):
            return None
        return self.COMPARATOR_FUNC[node["value"]](left, right)


_INTERPRETER: Final = _Interpreter()  # stateless between searches: one is shared


def _interpreted(ast: _TreeNode) -> Callable[[Any], Any]:
    def search(value: Any) -> Any:
        return _INTERPRETER.visit(ast, value)

    return search


def _steps(node: Mapping[str, Any]) -> tuple[str | int, ...] | None:
    """``a.b[0].c`` as ``("a", "b", 0, "c")`` when the AST is only field access and list
    indexes (quoted names included), else None."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind == "index":
        return (node["value"],)
    if kind in ("subexpression", "index_expression"):
        steps: list[str | int] = []
        for child in node["children"]:
            chain = _steps(child)
            if chain is None:
                return None
            steps.extend(chain)
        return tuple(steps)
    return None


def _field_getter(names: tuple[str, ...]) -> Callable[[Any], Any]:
    """Plain field access, equivalent to JMESPath's on JSON data: a missing key, or a
    step into a list, string, number, boolean or null, gives null. Subscripting is the
    fast case (~5x JMESPath); only dicts take a string subscript, so the errors are
    exactly the steps JMESPath answers with null."""
    if len(names) == 1:
        (only,) = names

        def get_one(value: Any) -> Any:
            try:
                return value[only]
            except (KeyError, TypeError):
                return None

        return get_one

    def get(value: Any) -> Any:
        try:
            for name in names:
                value = value[name]
        except (KeyError, TypeError):
            return None
        return value

    return get


def _step_getter(steps: tuple[str | int, ...]) -> Callable[[Any], Any]:
    """Field access and list indexes, as JMESPath: ``[i]`` of anything but a list (a
    string included) is null, and so is an index out of range; negative ones count back."""
    plan: tuple[tuple[bool, Any], ...] = tuple((isinstance(step, str), step) for step in steps)

    def get(value: Any) -> Any:
        for is_field, step in plan:
            if is_field:
                if not isinstance(value, dict):
                    return None
                value = value.get(step)
            else:
                if not isinstance(value, list):
                    return None
                try:
                    value = value[step]
                except IndexError:
                    return None
        return value

    return get


def _fast_search(node: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """A closure equivalent to interpreting ``node``, for the common shapes (paths, and
    ``==`` / ``!=`` between paths and literals); None for anything else."""
    steps = _steps(node)
    if steps is not None:
        if all(isinstance(step, str) for step in steps):
            return _field_getter(tuple(str(step) for step in steps))
        return _step_getter(steps)
    kind = node["type"]
    if kind == "literal":
        literal = node["value"]  # the interpreter also returns this very object
        return lambda _value: literal
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        left, right = (_fast_search(child) for child in node["children"])
        if left is None or right is None:
            return None
        compare = TreeInterpreter.COMPARATOR_FUNC[node["value"]]  # JMESPath's own equality
        return lambda value: compare(left(value), right(value))
    return None


# Nodes whose first child is evaluated against the current value and the rest against
# its result (so only the first child can name a context root).
_CHAIN_NODES = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "filter_projection",
        "value_projection",
        "flatten",
        "pipe",
    }
)
# Nodes whose every child is evaluated against the current value.
_SAME_SCOPE_NODES = frozenset(
    {
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
        "function_expression",
        "or_expression",
        "and_expression",
        "not_expression",
        "comparator",
    }
)


def _root_names(node: Mapping[str, Any]) -> list[str]:
    """The field names an expression reads from the top of its input."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    children = node.get("children", [])
    if kind in _CHAIN_NODES and children:
        return _root_names(children[0])
    if kind in _SAME_SCOPE_NODES:
        return [name for child in children for name in _root_names(child)]
    return []  # literals, @, expref (evaluated per element), slices


_FUNCTIONS: Final = frozenset(Functions.FUNCTION_TABLE)


def _unknown_functions(node: Mapping[str, Any]) -> list[str]:
    found = [node["value"]] if node["type"] == "function_expression" else []
    if found and found[0] in _FUNCTIONS:
        found = []
    return found + [
        name for child in node.get("children", []) for name in _unknown_functions(child)
    ]


def _parse_error_text(exc: JMESPathError) -> str:
    if isinstance(exc, LexerError):
        return f"{exc.message} at position {exc.lexer_position}"
    if isinstance(exc, IncompleteExpressionError):
        return "the expression ends too early"
    if isinstance(exc, ParseError):
        return f"{exc.msg} (at position {exc.lex_position})"
    return str(exc).replace("\n", " ")


def _jmespath_fix(text: str) -> str:
    if text.lstrip().startswith("$"):
        return "JMESPath has no '$' root: start the path at the context, e.g. event.data.email"
    if "-" in text and '"' not in text:
        return 'quote names that contain "-", e.g. headers."x-shopify-topic"'
    if "{{" in text or "}}" in text:
        return "write a bare path here (templates with {…} placeholders go under template:)"
    return "write a JMESPath expression (https://jmespath.org), e.g. event.data.email"


def compile_expression(text: str, *, roots: frozenset[str] | None = None) -> Expression:
    """Compile a JMESPath expression once.

    ``roots``, when given, are the names the expression may start from; a path such as
    ``data.email`` (forgetting ``event.``) would otherwise be null for every event.
    Raises :class:`ExpressionError` with a suggested fix.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression", "write a path such as event.data.email")
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        raise ExpressionError(
            f"invalid JMESPath expression {text!r}: {_parse_error_text(exc)}", _jmespath_fix(text)
        ) from None
    ast = parsed.parsed
    for name in _unknown_functions(ast):
        close = difflib.get_close_matches(name, sorted(_FUNCTIONS), n=1)
        raise ExpressionError(
            f"expression {text!r} calls {name}(), which JMESPath does not have",
            f"did you mean {close[0]}()?"
            if close
            else "see https://jmespath.org/specification.html#built-in-functions",
        )
    if roots is not None:
        for name in _root_names(ast):
            if name not in roots:
                allowed = ", ".join(sorted(roots))
                if name in ("null", "true", "false"):
                    fix = f"JMESPath literals go in backticks: `{name}`"
                else:
                    fix = (
                        f"start at the context (event.{name} if it is in the event); "
                        "for literal text write {value: ...}"
                    )
                raise ExpressionError(
                    f"expression {text!r} reads {name!r}, which is not in the context ({allowed})",
                    fix,
                )
    return Expression(text=text, search=_fast_search(ast) or _interpreted(ast))


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; every number is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


# --------------------------------------------------------------------------- templates


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


# --------------------------------------------------------------------------- coercion


class _CoercionError(ValueError):
    pass


def _shown(value: Any) -> str:
    text = render_value(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _fail(value: Any, target: str) -> _CoercionError:
    return _CoercionError(f"cannot convert {_kind(value)} {_shown(value)} to {target}")


_INT_TEXT = re.compile(r"[+-]?\d{1,30}")
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_MAX_DECIMAL_MAGNITUDE = 30  # digits before the point; beyond this it is not money
# Explicit, so the result never depends on a thread's current decimal context.
_DECIMAL_CONTEXT: Final = Context(
    prec=_MAX_DECIMAL_MAGNITUDE + 20, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation]
)
_QUANTUM: Final = tuple(Decimal(1).scaleb(-digits) for digits in range(19))  # places 0..18


def _to_string(value: Any) -> str:
    if isinstance(value, dict | list):
        raise _fail(value, "string")
    return render_value(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _fail(value, "int")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise _fail(value, "int")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(value, "float")
    try:
        result = float(value)
    except (ValueError, OverflowError):
        raise _fail(value, "float") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise _fail(value, "float")
    return result


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _fail(value, "bool")


def _epoch(value: int | float, epoch_unit: str, target: str) -> datetime:
    seconds = value / 1000 if epoch_unit == "ms" else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _fail(value, target) from None


def _parse_datetime(value: Any, target: str, epoch_unit: str) -> datetime:
    if isinstance(value, bool):
        raise _fail(value, target)
    if isinstance(value, int | float):
        return _epoch(value, epoch_unit, target)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _fail(value, target) from None
        # No offset written: the sources this bridge reads (Stripe, Shopify, Clerk) mean UTC.
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _fail(value, target)


def _to_datetime(value: Any, epoch_unit: str) -> str:
    moment = _parse_datetime(value, "datetime", epoch_unit)
    try:
        text = moment.astimezone(UTC).isoformat()
    except OverflowError:
        raise _fail(value, "datetime") from None
    return text.removesuffix("+00:00") + "Z"


def _to_date(value: Any, epoch_unit: str) -> str:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    # A datetime string keeps the calendar date it was written in; an epoch is a UTC date.
    return _parse_datetime(value, "date", epoch_unit).date().isoformat()


def _decimal_converter(exponent: int, places: int | None) -> Callable[[Any], str]:
    """Conversion to exact decimal text. An integer (Stripe's minor units: the common
    case) that needs no rounding is shifted as text, without Decimal; the same result."""
    digits = places if places is not None else (exponent if exponent > 0 else None)
    # Exact: the value keeps at least its exponent's digits (no rounding), as text.
    exact = exponent >= 0 and (digits is None or exponent <= digits < len(_QUANTUM))
    scale = 10 ** ((digits or 0) - exponent) if exact else 1
    too_large = 10 ** (_MAX_DECIMAL_MAGNITUDE + 1 + max(exponent, 0))  # _decimal_text refuses

    def convert(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _fail(value, "decimal")
        if exact and isinstance(value, int) and -too_large < value < too_large:
            text = str(abs(value) * scale)
            sign = "-" if value < 0 else ""
            if not digits:
                return sign + text
            text = text.rjust(digits + 1, "0")
            return f"{sign}{text[:-digits]}.{text[-digits:]}"
        return _decimal_text(value, exponent, places)

    return convert


def _decimal_text(value: int | float | str, exponent: int, places: int | None) -> str:
    """Any number or numeric text through Decimal: the general path."""
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except (InvalidOperation, ValueError):
        raise _fail(value, "decimal") from None
    if not number.is_finite() or number.adjusted() - exponent > _MAX_DECIMAL_MAGNITUDE:
        raise _fail(value, "decimal")
    number = number.scaleb(-exponent, context=_DECIMAL_CONTEXT)
    digits = places if places is not None else (exponent if exponent > 0 else None)
    if digits is not None:
        try:
            number = number.quantize(_QUANTUM[digits], context=_DECIMAL_CONTEXT)
        except InvalidOperation:
            raise _fail(value, "decimal") from None
    return format(number, "f")


def _converter(
    type_: str, *, exponent: int = 0, places: int | None = None, epoch_unit: str = "s"
) -> Callable[[Any], Any]:
    """The conversion to ``type_``, chosen once (a mapping converts every event)."""
    if type_ == "string":
        return _to_string
    if type_ == "int":
        return _to_int
    if type_ == "float":
        return _to_float
    if type_ == "bool":
        return _to_bool
    if type_ == "date":
        return lambda value: _to_date(value, epoch_unit)
    if type_ == "datetime":
        return lambda value: _to_datetime(value, epoch_unit)
    if type_ == "decimal":
        return _decimal_converter(exponent, places)

    def unknown(_value: Any) -> Any:
        raise _CoercionError(f"unknown type {type_!r}")

    return unknown


def coerce(
    value: Any,
    type_: str,
    *,
    exponent: int = 0,
    places: int | None = None,
    epoch_unit: str = "s",
) -> Any:
    """Convert one value to ``type_``; raises ``ValueError`` saying what could not be converted.

    ``decimal`` gives a string (JSON numbers cannot keep ``29.00``): the value divided by
    ``10**exponent``, with ``places`` digits after the point (default: ``exponent``).
    ``date`` / ``datetime`` take ISO text or epoch numbers (``epoch_unit`` s or ms) and give
    ``YYYY-MM-DD`` / ISO 8601 UTC with ``Z``.
    """
    return _converter(type_, exponent=exponent, places=places, epoch_unit=epoch_unit)(value)


# --------------------------------------------------------------------------- mappings


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
                field, paths[0].text, f"each: needs an array, got {_kind(items)} {_shown(items)}"
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
    inner: _Node, spec: FieldSpec, field: str, expression: str | None
) -> _Node:
    has_default = "default" in spec.model_fields_set
    default = spec.default
    type_ = spec.type
    if not has_default and type_ is None:
        return inner
    convert = (
        _converter(type_, exponent=spec.exponent, places=spec.places, epoch_unit=spec.epoch_unit)
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
    spec: FieldSpec, field: str, loc: tuple[str | int, ...], roots: frozenset[str]
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


def compile_mapping(route: str, fields: Mapping[str, FieldSpec]) -> CompiledMapping:
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
