"""Brew's trigger ``payloadSchema``: check a payload against it, and check the schema itself.

One validator, shared by the simulator (which must refuse a fire the way Brew does) and
by routing (which refuses a mapped payload *before* it is queued, so a bad event becomes
a ``payload_invalid`` dead letter instead of a fire that can never succeed).

The rules follow Brew's contract validator (brew-api.md §2.1, §6, §7.3):

- ``payload_not_object``: the payload is not a JSON object (field ``""``).
- ``missing_required``: a required field is absent (or ``null``) and has no fallback.
- ``invalid_type``: a value has the wrong JSON type; ``expectedType`` is the schema type
  and ``actualType`` the JSON type seen (``string number boolean object array null``).
- ``unexpected_key``: a key the schema does not declare. Brew *accepts* these, so they
  are warnings, and the key stays in the resolved payload.

A missing field with a ``fallbackValue`` gets that value in :attr:`PayloadCheck.resolved`.
Field paths are dotted (``order.total``) with list indexes (``lineItems[0].sku``).

:func:`check_payload` is pure and never raises, even on a malformed schema (it skips the
parts it cannot read); :func:`schema_problems` is what says a schema is malformed.
Routing checks every event, so it uses :func:`compile_schema`: the schema is read once
into closures and a check walks the payload only (3x faster than reading the schema per
payload; ``check_payload`` is the same compiled check, compiled per call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = [
    "EMAIL_RULE",
    "FIELD_TYPES",
    "ITEM_TYPES",
    "FieldIssue",
    "PayloadCheck",
    "SchemaCheck",
    "check_payload",
    "compile_schema",
    "json_type",
    "schema_problems",
]

# Wire field types: TriggerPayloadField (string|int|boolean|object|array) plus the contract
# field types (float|date|enum|unknown) that Brew's contract endpoints use.
FIELD_TYPES = frozenset(
    {"string", "int", "float", "boolean", "date", "enum", "object", "array", "unknown"}
)
ITEM_TYPES = frozenset({"string", "int", "float", "boolean", "date", "enum", "unknown"})
_PII = frozenset({"none", "low", "high"})

EMAIL_RULE = 'payloadSchema.fields must contain {key: "email", type: "string", required: true}'

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


@dataclass(frozen=True)
class FieldIssue:
    """One problem (error or warning) found in a payload, as Brew reports it."""

    code: str  # payload_not_object | missing_required | invalid_type | unexpected_key
    field: str
    message: str
    expected_type: str | None = None
    actual_type: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The issue as it appears in ``details.errors[]`` / ``details.warnings[]``."""
        wire: dict[str, Any] = {"code": self.code, "field": self.field, "message": self.message}
        if self.expected_type is not None:
            wire["expectedType"] = self.expected_type
        if self.actual_type is not None:
            wire["actualType"] = self.actual_type
        return wire


@dataclass(frozen=True)
class PayloadCheck:
    """The verdict on one payload: errors refuse it, warnings do not."""

    errors: tuple[FieldIssue, ...]
    warnings: tuple[FieldIssue, ...]
    resolved: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.errors


def json_type(value: object) -> str:
    """The JSON type name of a decoded value, as Brew names it in ``actualType``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _is_int(value: object) -> bool:
    if isinstance(value, bool):  # bool is an int subclass in Python, never in JSON
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _scalar_check(type_: str, enum_values: object) -> type | Callable[[object], bool] | None:
    """How a value of scalar ``type_`` is checked (JSON types, not Python's): a class for
    isinstance (no call: the common case), a predicate, or None when anything goes."""
    if type_ in ("string", "date"):
        return str
    if type_ == "enum":
        if not isinstance(enum_values, list) or not enum_values:
            return str
        return lambda value: isinstance(value, str) and value in enum_values
    if type_ == "boolean":
        return bool
    if type_ == "int":
        return _is_int
    if type_ == "float":
        return _is_number
    if type_ == "unknown":
        return None
    # A type schema_problems reports: only a boolean is blamed (as the first validator did).
    return _not_boolean


def _not_boolean(value: object) -> bool:
    return not isinstance(value, bool)


def _type_issue(path: str, value: object, type_: str, enum_values: object) -> FieldIssue:
    if type_ == "enum" and isinstance(value, str) and isinstance(enum_values, list):
        allowed = ", ".join(f'"{v}"' for v in enum_values)
        message = f'Field "{path}" must be one of {allowed}'
    else:
        message = f'Field "{path}" must be {_ARTICLE.get(type_, type_)}'
    return FieldIssue("invalid_type", path, message, type_, json_type(value))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)  # dict skips the ABC check


_Issues = list[FieldIssue]
# Checks one value at ``path`` (appending to errors, warnings); returns the resolved value.
_Check = Callable[[Any, str, _Issues, _Issues], Any]
# Checks one object level under ``prefix``; returns a copy with fallbacks applied.
_Level = Callable[[Mapping[str, Any], str, _Issues, _Issues], dict[str, Any]]


def _lazy_level(fields: list[Any]) -> _Level:
    """A nested level, compiled when a payload first reaches it, so compiling goes no
    deeper than the payloads checked (a deep schema cannot exhaust the stack)."""
    compiled: list[_Level] = []

    def level(
        value: Mapping[str, Any], prefix: str, errors: _Issues, warnings: _Issues
    ) -> dict[str, Any]:
        if not compiled:
            compiled.append(_compile_level(fields))
        return compiled[0](value, prefix, errors, warnings)

    return level


def _object_check(children: object) -> _Check:
    nested = _lazy_level(children) if isinstance(children, list) and children else None

    def check(item: Any, path: str, errors: _Issues, warnings: _Issues) -> Any:
        if not _is_mapping(item):
            errors.append(_type_issue(path, item, "object", None))
            return item
        return nested(item, path, errors, warnings) if nested is not None else item

    return check


def _element_check(spec: Mapping[str, Any]) -> _Check:
    """One element of an array field: an object when the field has children, else a
    scalar of its ``itemType``."""
    children = spec.get("children")
    if isinstance(children, list) and children:
        return _object_check(children)
    written = spec.get("itemType")
    item_type = written if isinstance(written, str) else ""
    enum_values = spec.get("enumValues")
    scalar = _scalar_check(item_type, enum_values) if isinstance(written, str) else None

    def check(item: Any, path: str, errors: _Issues, warnings: _Issues) -> Any:
        if scalar is not None and not (
            isinstance(item, scalar) if isinstance(scalar, type) else scalar(item)
        ):
            errors.append(_type_issue(path, item, item_type, enum_values))
        return item

    return check


def _array_check(spec: Mapping[str, Any]) -> _Check:
    element = _element_check(spec)

    def check(item: Any, path: str, errors: _Issues, warnings: _Issues) -> Any:
        if not isinstance(item, list):
            errors.append(_type_issue(path, item, "array", None))
            return item
        return [element(e, f"{path}[{i}]", errors, warnings) for i, e in enumerate(item)]

    return check


# One declared field of a level, read from its spec once: key, has fallbackValue,
# fallbackValue, required, type as written, nested check (object / array), class for
# isinstance, predicate, spec (for the invalid_type message). A tuple, not an object:
# unpacking it is the cheapest read on the ingest path.
_Row = tuple[str, bool, Any, bool, Any, _Check | None, type | None, Any, Mapping[str, Any]]


def _compile_row(key: str, spec: Mapping[str, Any]) -> _Row:
    type_ = spec.get("type")
    nested: _Check | None = None
    scalar: type | Callable[[object], bool] | None = None
    if type_ == "object":
        nested = _object_check(spec.get("children"))
    elif type_ == "array":
        nested = _array_check(spec)
    elif isinstance(type_, str):
        scalar = _scalar_check(type_, spec.get("enumValues"))
    instance_of = scalar if isinstance(scalar, type) else None
    predicate = None if isinstance(scalar, type) else scalar
    return (
        key,
        "fallbackValue" in spec,
        spec.get("fallbackValue"),
        spec.get("required") is True,
        type_,
        nested,
        instance_of,
        predicate,
        spec,
    )


def _compile_level(fields: object) -> _Level:
    """One object level: each field in schema order (specs without a string key are
    skipped), then the payload's undeclared keys as warnings, in payload order."""
    rows = tuple(
        _compile_row(spec["key"], spec)
        for spec in (fields if isinstance(fields, list) else ())
        if isinstance(spec, Mapping) and isinstance(spec.get("key"), str)
    )
    declared = frozenset(row[0] for row in rows)

    def level(
        value: Mapping[str, Any], prefix: str, errors: _Issues, warnings: _Issues
    ) -> dict[str, Any]:
        resolved = dict(value)
        get = value.get
        for (
            key,
            has_fallback,
            fallback,
            required,
            type_,
            nested,
            instance_of,
            predicate,
            spec,
        ) in rows:
            item = get(key)
            if item is None:
                if has_fallback:
                    resolved[key] = fallback
                elif required:
                    path = _join(prefix, key)
                    message = f'Required field "{path}" is missing'
                    errors.append(
                        FieldIssue("missing_required", path, message, expected_type=type_)
                    )
                continue
            if nested is not None:
                resolved[key] = nested(item, _join(prefix, key), errors, warnings)
                continue
            if (instance_of is not None and not isinstance(item, instance_of)) or (
                predicate is not None and not predicate(item)
            ):
                enum_values = spec.get("enumValues")
                errors.append(_type_issue(_join(prefix, key), item, type_, enum_values))
            resolved[key] = item
        if not declared.issuperset(value):
            for key in value:
                if key not in declared:
                    path = _join(prefix, key)
                    message = f'Field "{path}" is not declared in the contract'
                    warnings.append(FieldIssue("unexpected_key", path, message))
        return resolved

    return level


class SchemaCheck:
    """A ``payloadSchema`` compiled once into closures; calling it checks one payload.

    Routing compiles each trigger's schema at config load and checks every event with
    it; :func:`check_payload` compiles per call (the simulator checks one fire at a time).
    """

    __slots__ = ("_level", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        fields = schema.get("fields") if isinstance(schema, Mapping) else None
        self._level = _compile_level(fields)

    def __call__(self, payload: object) -> PayloadCheck:
        """Check ``payload``. Pure; never raises."""
        if not _is_mapping(payload):
            issue = FieldIssue(
                "payload_not_object",
                "",
                "The payload must be a JSON object",
                expected_type="object",
                actual_type=json_type(payload),
            )
            return PayloadCheck(errors=(issue,), warnings=(), resolved={})
        errors: _Issues = []
        warnings: _Issues = []
        resolved = self._level(payload, "", errors, warnings)
        return PayloadCheck(tuple(errors), tuple(warnings), resolved)


def compile_schema(schema: Mapping[str, Any]) -> SchemaCheck:
    """Compile a wire ``payloadSchema`` once (never raises, even on a malformed schema)."""
    return SchemaCheck(schema)


def check_payload(payload: object, schema: Mapping[str, Any]) -> PayloadCheck:
    """Check ``payload`` against a wire ``payloadSchema``. Pure; never raises."""
    return SchemaCheck(schema)(payload)


def _field_problems(fields: object, where: str, problems: list[str]) -> None:
    if not isinstance(fields, list):
        problems.append(f"{where} must be a list of fields")
        return
    seen: set[str] = set()
    for i, spec in enumerate(fields):
        at = f"{where}[{i}]"
        if not isinstance(spec, Mapping):
            problems.append(f"{at} must be an object with key, type and required")
            continue
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            problems.append(f"{at}.key must be a non-empty string")
        elif key in seen:
            problems.append(f'{at}.key "{key}" is declared twice at this level')
        else:
            seen.add(key)
            at = f"{where}[{key}]"
        type_ = spec.get("type")
        if type_ not in FIELD_TYPES:
            allowed = "|".join(sorted(FIELD_TYPES))
            problems.append(f"{at}.type must be one of {allowed}, not {type_!r}")
        if not isinstance(spec.get("required"), bool):
            problems.append(f"{at}.required must be true or false")
        if "fallbackValue" in spec and not isinstance(spec["fallbackValue"], str | int | float):
            problems.append(f"{at}.fallbackValue must be a string, number or boolean")
        if "pii" in spec and spec["pii"] not in _PII:
            problems.append(f"{at}.pii must be one of high|low|none")
        if "itemType" in spec:
            if type_ != "array":
                problems.append(f"{at}.itemType is only allowed on an array field")
            elif spec["itemType"] not in ITEM_TYPES:
                allowed = "|".join(sorted(ITEM_TYPES))
                problems.append(f"{at}.itemType must be one of {allowed}")
        if "children" in spec:
            if type_ not in ("object", "array"):
                problems.append(f"{at}.children is only allowed on an object or array field")
            else:
                _field_problems(spec["children"], f"{at}.children", problems)


def schema_problems(schema: object) -> list[str]:
    """Every structural problem of a wire ``payloadSchema``; empty when it is usable.

    Includes Brew's create rule: a top-level required string ``email`` field.
    """
    if not isinstance(schema, Mapping):
        return ["payloadSchema must be an object: {type: object, fields: [...]}"]
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append('payloadSchema.type must be "object"')
    fields = schema.get("fields")
    _field_problems(fields, "payloadSchema.fields", problems)
    has_email = isinstance(fields, list) and any(
        isinstance(f, Mapping)
        and f.get("key") == "email"
        and f.get("type") == "string"
        and f.get("required") is True
        for f in fields
    )
    if not has_email:
        problems.append(EMAIL_RULE)
    return problems
