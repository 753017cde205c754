"""JMESPath expressions over a record's context, compiled once.

A path is a JMESPath expression over the *context* of one record::

    {"event": <decoded JSON value>, "headers": {name (lower case): str},
     "stream": str, "position": str, "topic": str, "partition": int | None,
     "offset": int | None, "key": str | None, "route": str}

plus ``item`` / ``index`` inside an ``each:`` sub-mapping. Expressions of the common
shapes (field names and list indexes such as ``event.data.items[0].sku``, and ``==`` /
``!=`` between those and literals) skip the JMESPath interpreter: they compile to
closures that return exactly what it would (property-tested against jmespath).

The dialect is JMESPath Community Edition (the ``jmespath-community`` package), whose
``$`` is the whole context wherever it is written and whose ``let $name = ... in ...``
binds names, so a filter can compare an element with another part of the event::

    event.data.email_addresses[?id == $.event.data.primary_email_address_id].email_address | [0]

Its arithmetic (``a - b``) is refused: unquoted, ``headers.x-shopify-topic`` would
subtract.

Nothing in a config is ever executed as code: no ``eval``, no Jinja, no ``str.format``
on user text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError
from jmespath.functions import Functions
from jmespath.visitor import TreeInterpreter

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CONTEXT_ROOTS",
    "ITEM_ROOTS",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "is_truthy",
]

# Names a path may start with: the record context, and inside ``each`` the element.
CONTEXT_ROOTS: Final = frozenset(
    {"event", "headers", "key", "route", "stream", "position", "topic", "partition", "offset"}
)
ITEM_ROOTS: Final = frozenset({"item", "index"})


class ExpressionError(ValueError):
    """An expression or template in the config cannot be compiled; says what to write instead.

    ``loc`` is where it sits, relative to what was being compiled (e.g. a route's payload).
    """

    def __init__(self, message: str, fix: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.loc = loc


@dataclass(frozen=True)
class Expression:
    """A compiled JMESPath expression. ``search`` may raise ``JMESPathError`` on bad data."""

    text: str
    search: Callable[[Any], Any]


_Node = Mapping[str, Any]  # a jmespath AST node: {"type", "value", "children"}


_VISITS: Final[dict[str, Any]] = {}  # node type -> _Interpreter.visit_<type>


# jmespath-community ships no type information: its classes are Any to mypy.
class _Interpreter(TreeInterpreter):  # type: ignore[misc]
    """jmespath's interpreter with the spec's rule for ``<``, ``<=``, ``>``, ``>=``: operands
    that are not both numbers or both strings give null. (jmespath-community 1.1.3 raises
    TypeError for a string against a number, so ``event.amount > `100``` would fail, not
    be false.)

    ``$`` and ``let`` keep state in the interpreter (the root, the bound names): an
    expression that uses them gets an interpreter of its own for each search.
    """

    _ORDERING: Final = frozenset({"lt", "lte", "gt", "gte"})

    def visit(self, node: _Node, *args: Any, **kwargs: Any) -> Any:
        # jmespath caches the visit_* method of each node type per interpreter, so a new
        # one starts cold (~5 us a search); _VISITS is per class: every one starts warm.
        kind: str = node["type"]
        try:
            method = _VISITS[kind]
        except KeyError:
            method = getattr(_Interpreter, f"visit_{kind}", _Interpreter.default_visit)
            _VISITS[kind] = method
        return method(self, node, *args, **kwargs)

    def visit_comparator(self, node: _Node, value: Any) -> Any:
        if node["value"] not in self._ORDERING:
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (left, right))
        strings = isinstance(left, str) and isinstance(right, str)
        if not (numbers or strings):
            return None
        return self.COMPARATOR_FUNC[node["value"]](left, right)


# Without $ and let the interpreter keeps no state between (or during) searches: one is
# shared.
_INTERPRETER: Final = _Interpreter()
_STATEFUL_NODES: Final = frozenset({"root", "let_expression", "variable_ref"})


def _subnodes(node: _Node) -> Iterator[_Node]:
    """The child nodes (a slice's children are its bounds, not nodes)."""
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield child


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    for child in _subnodes(node):
        yield from _walk(child)


def _interpreted(ast: _Node) -> Callable[[Any], Any]:
    if any(node["type"] in _STATEFUL_NODES for node in _walk(ast)):

        def search_with_root(value: Any) -> Any:
            return _Interpreter().evaluate(ast, value)  # sets $ to value; fresh names

        return search_with_root

    def search(value: Any) -> Any:
        return _INTERPRETER.visit(ast, value)

    return search


def _steps(node: _Node) -> tuple[str | int, ...] | None:
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


def _fast_search(node: _Node) -> Callable[[Any], Any] | None:
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


_Joined = Callable[[Any, Any], Any]  # (current value, root) -> result


def _in_turn(parts: Sequence[_Joined], *, stop_at_null: bool) -> _Joined:
    def chain(value: Any, root: Any) -> Any:
        for part in parts:
            value = part(value, root)
            if stop_at_null and value is None:
                return None
        return value

    return chain


def _joined(node: _Node) -> _Joined | None:
    """A closure of (current value, root) equivalent to interpreting ``node``, for the
    shapes a join is written in: ``$``, ``@``, filters (``[?a == $.b]``), ``[*]``
    projections and pipes, over the shapes :func:`_fast_search` takes; None for anything
    else. Each branch does what jmespath's TreeInterpreter's ``visit_<type>`` does."""
    rootless = _fast_search(node)
    if rootless is not None:
        return lambda value, _root: rootless(value)
    kind = node["type"]
    if kind == "root":
        return lambda _value, root: root
    if kind in ("identity", "current"):
        return lambda value, _root: value
    parts = [_joined(child) for child in _subnodes(node)]
    if not parts or any(part is None for part in parts):
        return None
    compiled = [part for part in parts if part is not None]
    if kind == "subexpression":
        return _in_turn(compiled, stop_at_null=True)
    if kind in ("index_expression", "pipe"):
        return _in_turn(compiled, stop_at_null=False)
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        compare = TreeInterpreter.COMPARATOR_FUNC[node["value"]]
        left, right = compiled
        return lambda value, root: compare(left(value, root), right(value, root))
    if kind == "filter_projection":
        base, project, condition = compiled
        return _filtered(base, project, condition)
    # A projection over a sliced string is a subexpression in jmespath; slices are never
    # compiled here, so every base reaching this branch projects only over lists.
    if kind == "projection":
        return _filtered(compiled[0], compiled[1], None)
    return None


def _filtered(base: _Joined, project: _Joined, condition: _Joined | None) -> _Joined:
    def projection(value: Any, root: Any) -> Any:
        items = base(value, root)
        if not isinstance(items, list):
            return None
        collected = []
        for element in items:
            if condition is None or is_truthy(condition(element, root)):
                current = project(element, root)
                if current is not None:
                    collected.append(current)
        return collected

    return projection


def _compiled_search(ast: _Node) -> Callable[[Any], Any]:
    fast = _fast_search(ast)
    if fast is not None:
        return fast
    joined = _joined(ast)
    if joined is not None:
        return lambda value: joined(value, value)  # $ is the value searched
    return _interpreted(ast)


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
# Nodes whose every child is evaluated against the current value (``let``: its bindings
# and its body).
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
        "let_expression",
        "assign",
    }
)


def _root_names(node: _Node) -> list[str]:
    """The field names an expression reads from the top of its input."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    children = list(_subnodes(node))
    if kind in _CHAIN_NODES and children:
        return _root_names(children[0])
    if kind in _SAME_SCOPE_NODES:
        return [name for child in children for name in _root_names(child)]
    return []  # literals, @, $ (see _names_read_through_root), $name, expref, slices


def _names_read_through_root(node: _Node) -> list[str]:
    """The field names read from ``$`` (the whole context), wherever ``$`` is written:
    ``event`` in ``items[?id == $.event.id]``."""
    found: list[str] = []
    for inner in _walk(node):
        steps = list(_subnodes(inner))
        chained = inner["type"] in ("subexpression", "pipe") and len(steps) > 1
        if chained and steps[0]["type"] == "root":
            found.extend(_root_names(steps[1]))
    return found


def _unbound_variables(node: _Node, bound: frozenset[str] = frozenset()) -> list[str]:
    """``$name`` references that no enclosing ``let`` binds (as jmespath-community binds:
    a let's bindings are evaluated before any of its names is bound)."""
    kind = node["type"]
    if kind == "variable_ref":
        return [] if node["value"] in bound else [node["value"]]
    children = list(_subnodes(node))
    if kind == "let_expression" and children:
        *bindings, body = children
        found = [name for binding in bindings for name in _unbound_variables(binding, bound)]
        inner = bound | {binding["value"] for binding in bindings}
        return found + _unbound_variables(body, inner)
    return [name for child in children for name in _unbound_variables(child, bound)]


_FUNCTIONS: Final = frozenset(Functions.FUNCTION_TABLE)


def _unknown_functions(node: _Node) -> list[str]:
    return [
        inner["value"]
        for inner in _walk(node)
        if inner["type"] == "function_expression" and inner["value"] not in _FUNCTIONS
    ]


_ARITHMETIC: Final = frozenset({"arithmetic", "arithmetic_unary"})
# What a joined expression looks like, for the fixes that explain roots.
_JOIN_HINT: Final = (
    "to compare with another part of the event inside a filter, refer to the root with $ "
    "(e.g. event.data.email_addresses[?id == $.event.data.primary_email_address_id])"
)
_QUOTE_HINT: Final = 'quote names that contain "-", e.g. headers."x-shopify-topic"'


def _bad_literal(exc: JMESPathError) -> bool:
    """A backtick literal that is not JSON (`foo`: jmespath-community has no legacy
    literals)."""
    return isinstance(exc, LexerError) and str(exc.message).startswith("Bad token")


def _parse_error_text(exc: JMESPathError) -> str:
    if isinstance(exc, LexerError):
        if _bad_literal(exc):  # jmespath-community's own message here is garbled
            return f"the literal at position {exc.lexer_position} is not JSON"
        return f"{exc.message} at position {exc.lexer_position}"
    if isinstance(exc, IncompleteExpressionError):
        return "the expression ends too early"
    if isinstance(exc, ParseError):
        return f"{exc.msg} (at position {exc.lex_position})"
    return str(exc).replace("\n", " ")


def _jmespath_fix(text: str, exc: JMESPathError) -> str:
    if _bad_literal(exc):
        return "backticks hold JSON: write text as 'text' (or `\"text\"`), numbers as `1`"
    if "-" in text and '"' not in text:
        return _QUOTE_HINT
    if "{{" in text or "}}" in text:
        return "write a bare path here (templates with {…} placeholders go under template:)"
    return (
        "write a JMESPath expression (https://jmespath.org), e.g. event.data.email; " + _JOIN_HINT
    )


def _check_names(text: str, ast: _Node, roots: frozenset[str] | None) -> None:
    """Refuse arithmetic, ``$name`` that no ``let`` binds and (with ``roots``) a path
    that starts outside the context."""
    for node in _walk(ast):
        if node["type"] in _ARITHMETIC:
            if node["value"] == "minus" and "-" in text:
                raise ExpressionError(
                    f"expression {text!r} subtracts: a '-' outside quotes is minus", _QUOTE_HINT
                )
            raise ExpressionError(
                f"expression {text!r} does arithmetic ({node['value']}), which mappings do not",
                "map the value as it is; type: converts it (type: decimal with exponent: "
                "for minor units such as cents)",
            )
    if unbound := _unbound_variables(ast):
        name = unbound[0]
        raise ExpressionError(
            f"expression {text!r} reads ${name}, which no let binds",
            f"bind it first (let ${name} = event.… in …), or write $.{name} for the context's "
            f"{name}: $ alone is the whole context",
        )
    if roots is None:
        return
    for name in _root_names(ast) + _names_read_through_root(ast):
        if name not in roots:
            allowed = ", ".join(sorted(roots))
            if name in ("null", "true", "false"):
                fix = f"JMESPath literals go in backticks: `{name}`"
            else:
                fix = (
                    f"start at the context (event.{name} if it is in the event); "
                    f"for literal text write {{value: ...}}; {_JOIN_HINT}"
                )
            raise ExpressionError(
                f"expression {text!r} reads {name!r}, which is not in the context ({allowed})",
                fix,
            )


def compile_expression(text: str, *, roots: frozenset[str] | None = None) -> Expression:
    """Compile a JMESPath expression once.

    ``roots``, when given, are the names the expression may start from (directly or as
    ``$.name``); a path such as ``data.email`` (forgetting ``event.``) would otherwise be
    null for every event. Raises :class:`ExpressionError` with a suggested fix.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression", "write a path such as event.data.email")
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        raise ExpressionError(
            f"invalid JMESPath expression {text!r}: {_parse_error_text(exc)}",
            _jmespath_fix(text, exc),
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
    _check_names(text, ast, roots)
    return Expression(text=text, search=_compiled_search(ast))


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; every number is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True
