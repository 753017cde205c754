"""Problems with a place: file, key path, YAML line (or the environment variable) and fix.

Validators raise :func:`config_problem` (a pydantic error that carries its own fix);
:func:`validation_problems` turns a pydantic ``ValidationError`` into
:class:`~brew_bridge.errors.ConfigProblem` s, with a fix for every kind of error and the
closest valid key for an unknown one; :class:`Source` says where a location was written.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from brew_bridge.config.yamlpos import Loc, format_loc
from brew_bridge.errors import ConfigProblem
from brew_bridge.mapping.expressions import ExpressionError

__all__ = [
    "ENV_PREFIX",
    "Source",
    "checked",
    "config_problem",
    "problem",
    "validation_problems",
]

ENV_PREFIX = "BREW_BRIDGE_"  # of the variables that override the YAML (``__`` nests)


def config_problem(message: str, fix: str, at: Loc = ()) -> PydanticCustomError:
    """A validation error that carries its own fix (read back by :func:`validation_problems`).

    ``at`` is where, below the value being validated, the problem is.
    """
    return PydanticCustomError(
        "config_problem", "{message}", {"message": message, "fix": fix, "at": at}
    )


def checked(check: Callable[[str], object], at: Loc = ()) -> Callable[[str], str]:
    """A validator of expression text: ``check`` (a compiler) refusing it is a problem."""

    def validate(text: str) -> str:
        try:
            check(text)
        except ExpressionError as exc:
            raise config_problem(exc.message, exc.fix, at) from None
        return text

    return validate


@dataclass(frozen=True)
class Source:
    """Where a loaded config came from: file, YAML line of every key, env vars set."""

    file: str
    marks: Mapping[Loc, int]
    scalars: frozenset[Loc]  # values written as scalars (a shorthand may expand them)
    env: Mapping[str, str]  # BREW_BRIDGE_* names, upper case

    def where(self, loc: Loc) -> tuple[str, str, int | None]:
        """(file, key path, line) for a location; values set from the environment name it."""
        for size in range(len(loc), 0, -1):
            prefix = loc[:size]
            if all(isinstance(p, str) for p in prefix):
                var = ENV_PREFIX + "__".join(str(p).upper() for p in prefix)
                if var in self.env:
                    return "environment", var, None
        shown = loc
        line = None
        for size in range(len(loc), -1, -1):
            if loc[:size] in self.marks:
                line = self.marks[loc[:size]]
                if size < len(loc) and loc[:size] in self.scalars:
                    shown = loc[:size]  # deeper parts come from a shorthand the user never wrote
                break
        return self.file, format_loc(shown), line


def problem(source: Source, loc: Loc, message: str, fix: str) -> ConfigProblem:
    """The problem at ``loc``, placed by ``source``."""
    file, key_path, line = source.where(loc)
    return ConfigProblem(file=file, key_path=key_path, message=message, fix=fix, line=line)


_TYPE_FIXES = {
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as a number or boolean)",
    "list_type": "write a list, e.g. [a, b]",
    "dict_type": "write a mapping of key: value",
    "model_type": "write a mapping of key: value",
    "model_attributes_type": "write a mapping of key: value",
    "too_short": "add at least one entry",
    "too_long": "shorten it",
    "string_too_short": "write a non-empty value",
    "string_too_long": "shorten it",
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not NoneType]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The config model that a location inside ``root`` points at."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_key_fix(root: type[BaseModel], loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    names = [n for n in model.model_fields if n != "api_key"] if model is not None else []
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if names:
        return f"remove it; keys allowed here: {', '.join(names)}"
    return "remove it"


def validation_problems(
    exc: ValidationError, source: Source, root: type[BaseModel]
) -> list[ConfigProblem]:
    """Every error of ``exc`` (raised validating ``root``) as a problem with its fix."""
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "extra_forbidden" and loc:
            message, fix = f"unknown key {loc[-1]!r}", _unknown_key_fix(root, loc)
        elif kind == "missing" and loc:
            message = f"required key {loc[-1]!r} is missing"
            fix = f"add {loc[-1]}: (see config/example.yaml)"
        elif kind == "config_problem":
            message, fix = str(ctx["message"]), str(ctx["fix"])
            loc = (*loc, *ctx["at"])
        elif kind == "literal_error":
            message, fix = error["msg"], f"write one of {ctx.get('expected')}"
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            message, fix = error["msg"], "write a value in the allowed range"
        else:
            message = error["msg"].removeprefix("Value error, ")
            fix = _TYPE_FIXES.get(kind, "see config/example.yaml for what this key takes")
        problems.append(problem(source, loc, message, fix))
    return problems
