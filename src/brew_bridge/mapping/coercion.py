"""Coercion of mapped values to string, int, float, bool, ISO date / datetime and decimal.

Decimals are exact text: minor units such as Stripe's ``amount: 2900`` with
``exponent: 2`` become ``"29.00"``. A value that cannot be converted raises
``ValueError`` saying what it was (:func:`describe_value`) and what it should become.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, Final

from .templates import render_value

__all__ = ["coerce", "converter", "describe_value"]

_SHOWN_CHARS = 60  # values quoted in error messages are cut to this length


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


def describe_value(value: Any) -> str:
    """A value for an error message: its JSON kind and its text, cut short."""
    return f"{_kind(value)} {_shown(value)}"


def _fail(value: Any, target: str) -> _CoercionError:
    return _CoercionError(f"cannot convert {describe_value(value)} to {target}")


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


def converter(
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
    return converter(type_, exponent=exponent, places=places, epoch_unit=epoch_unit)(value)
