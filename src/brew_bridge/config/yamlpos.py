"""The YAML reader that keeps line numbers: plain data, plus the line of every key.

PyYAML's node tree is built into dicts, lists and JSON scalars by hand so each key's
location can be recorded (a problem names its line) and YAML's surprises are refused:
duplicate keys, keys that are not text, recursive aliases, values that are not JSON.
Dates stay text as written.
"""

from __future__ import annotations

import re
from types import NoneType
from typing import Any

import yaml

from brew_bridge.errors import ConfigProblem

__all__ = ["Loc", "YamlReader", "format_loc", "read_yaml"]

# Where a value sits in the config: keys and list indexes from the top.
Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """A location as messages show it: ``routes[0].payload.email``, ``headers['x y']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-/]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


class YamlReader:
    """Builds plain data from the YAML node tree, recording the line of every key."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.marks: dict[Loc, int] = {}
        self.scalars: set[Loc] = set()
        self.problems: list[ConfigProblem] = []
        self._active: set[int] = set()

    def problem(self, node: yaml.Node, loc: Loc, message: str, fix: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(ConfigProblem(self.file, format_loc(loc), message, fix, line))

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.marks.setdefault(loc, node.start_mark.line + 1)
        if id(node) in self._active:
            self.problem(node, loc, "an alias refers to itself", "remove the recursive alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, loc)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.problem(
                    key_node,
                    (*loc, str(key)),
                    f"key {key!r} is not text (YAML reads it as {type(key).__name__})",
                    f'quote it: "{key_node.value}"',
                )
                key = str(key_node.value)
            if key in out:
                self.problem(
                    key_node,
                    (*loc, key),
                    f"key {key!r} appears twice in this mapping",
                    "keep one: YAML would silently use the last",
                )
            self.marks[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*loc, key))
        return out

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        self.scalars.add(loc)
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # keep dates as written: payload literals are JSON
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, str | int | float | bool | NoneType):
            self.problem(
                node,
                loc,
                f"a {type(value).__name__} value is not JSON",
                "write text, a number, true/false or null",
            )
            return None
        return value


def read_yaml(text: str, file: str) -> tuple[Any, YamlReader]:
    """The data in ``text`` (None when it is not YAML) and the reader: marks, problems."""
    loader = yaml.SafeLoader(text)
    reader = YamlReader(file, loader)
    try:
        node = loader.get_single_node()
        data = reader.build(node, ()) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {exc.problem or exc.context}"
        reader.problems.append(
            ConfigProblem(file, "(file)", message, "fix the YAML syntax at this line", line)
        )
        data = None
    except yaml.YAMLError as exc:
        reader.problems.append(
            ConfigProblem(file, "(file)", f"not valid YAML: {exc}", "fix the YAML syntax")
        )
        data = None
    finally:
        loader.dispose()
    return data, reader
