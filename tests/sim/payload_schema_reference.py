"""The payloadSchema check as first written: a plain interpreter of the schema mapping.

Kept only as the oracle for ``test_sim_payload_schema``: the production check compiles a
schema once into closures (routing checks every event), and a property test asserts the
compiled check gives exactly what this walk gives (errors, warnings, resolved payload).
Do not import it from ``src``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brew_bridge.wire.payload_schema import FieldIssue, PayloadCheck, json_type

__all__ = ["reference_check_payload"]

_ARTICLE = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "boolean": "a boolean",
    "date": "a date string",
    "enum": "a string",
    "object": "an object",
    "array": "an array",
}


def _scalar_ok(value: object, type_: str, enum_values: object) -> bool:
    if type_ == "unknown":
        return True
    if type_ in ("string", "date"):
        return isinstance(value, str)
    if type_ == "enum":
        if not isinstance(value, str):
            return False
        return not isinstance(enum_values, list) or not enum_values or value in enum_values
    if type_ == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_ == "int":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_ == "float":
        return isinstance(value, int | float)
    return True


def _type_issue(path: str, value: object, type_: str, enum_values: object) -> FieldIssue:
    if type_ == "enum" and isinstance(value, str) and isinstance(enum_values, list):
        allowed = ", ".join(f'"{v}"' for v in enum_values)
        message = f'Field "{path}" must be one of {allowed}'
    else:
        message = f'Field "{path}" must be {_ARTICLE.get(type_, type_)}'
    return FieldIssue("invalid_type", path, message, type_, json_type(value))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldIssue] = []
        self.warnings: list[FieldIssue] = []

    def check_object(self, value: Mapping[str, Any], fields: object, prefix: str) -> dict[str, Any]:
        resolved = dict(value)
        declared: set[str] = set()
        for spec in fields if isinstance(fields, list) else ():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("key"), str):
                continue
            key: str = spec["key"]
            declared.add(key)
            path = _join(prefix, key)
            item = value.get(key)
            if item is None:
                if "fallbackValue" in spec:
                    resolved[key] = spec["fallbackValue"]
                elif spec.get("required") is True:
                    self.errors.append(
                        FieldIssue(
                            "missing_required",
                            path,
                            f'Required field "{path}" is missing',
                            expected_type=spec.get("type"),
                        )
                    )
                continue
            resolved[key] = self.check_value(item, spec, path)
        for key in value:
            if key not in declared:
                path = _join(prefix, key)
                message = f'Field "{path}" is not declared in the contract'
                self.warnings.append(FieldIssue("unexpected_key", path, message))
        return resolved

    def check_value(self, item: object, spec: Mapping[str, Any], path: str) -> object:
        type_ = spec.get("type")
        children = spec.get("children")
        if type_ == "object":
            if not isinstance(item, Mapping):
                self.errors.append(_type_issue(path, item, "object", None))
                return item
            if isinstance(children, list) and children:
                return self.check_object(item, children, path)
            return item
        if type_ == "array":
            if not isinstance(item, list):
                self.errors.append(_type_issue(path, item, "array", None))
                return item
            return [self.check_element(e, spec, f"{path}[{i}]") for i, e in enumerate(item)]
        if isinstance(type_, str) and not _scalar_ok(item, type_, spec.get("enumValues")):
            self.errors.append(_type_issue(path, item, type_, spec.get("enumValues")))
        return item

    def check_element(self, item: object, spec: Mapping[str, Any], path: str) -> object:
        children = spec.get("children")
        if isinstance(children, list) and children:
            if not isinstance(item, Mapping):
                self.errors.append(_type_issue(path, item, "object", None))
                return item
            return self.check_object(item, children, path)
        item_type = spec.get("itemType")
        if isinstance(item_type, str) and not _scalar_ok(item, item_type, spec.get("enumValues")):
            self.errors.append(_type_issue(path, item, item_type, spec.get("enumValues")))
        return item


def reference_check_payload(payload: object, schema: Mapping[str, Any]) -> PayloadCheck:
    """The original ``check_payload``."""
    if not isinstance(payload, Mapping):
        issue = FieldIssue(
            "payload_not_object",
            "",
            "The payload must be a JSON object",
            expected_type="object",
            actual_type=json_type(payload),
        )
        return PayloadCheck(errors=(issue,), warnings=(), resolved={})
    checker = _Checker()
    fields = schema.get("fields") if isinstance(schema, Mapping) else None
    resolved = checker.check_object(payload, fields, "")
    return PayloadCheck(tuple(checker.errors), tuple(checker.warnings), resolved)
