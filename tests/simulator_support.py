"""What the simulator test folders (``sim``, ``pinkfish``, ``boring_marketing``) share.

Importable from any test module, as ``tests/`` is on ``sys.path`` (pytest's rootdir
``conftest.py``, ``prepend`` import mode): polling, a clock moved by hand, the JSON type
names the shape checks compare, and for the targets' tests, the read slots and the rows
the outbox would hand a target.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Any, TypeVar

from brew_bridge.events import FireAccepted
from brew_bridge.store import DeliveryRow, RunRecord

__all__ = [
    "ManualClock",
    "Slots",
    "delivery_row",
    "json_kind",
    "poll",
    "run_row",
    "shape_problems",
]

T = TypeVar("T")

_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_kind(value: object) -> str:
    """The JSON type of ``value`` (``number`` for int and float alike)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def shape_problems(
    actual: object,
    expected: object,
    *,
    source: str,
    optional: Collection[str] = (),
    maps: Collection[str] = (),
    any_type: Collection[str] = (),
    free_form: Collection[str] = (),
    path: str = "$",
) -> Iterator[str]:
    """Where ``actual``'s keys and JSON types differ from ``expected``'s (an example from
    ``source``), recursively; list items are each compared with the example's first.

    Paths look like ``$.data[].completedAt``. A path in ``optional`` may be on one side
    only; one in ``any_type`` is not compared; an object under a key in ``free_form`` is
    compared as an object only; one at a path in ``maps`` is keyed by data: any keys,
    every value shaped like the example's first.
    """
    rules: dict[str, Any] = {
        "source": source,
        "optional": optional,
        "maps": maps,
        "any_type": any_type,
        "free_form": free_form,
    }
    if path in any_type:
        return
    if json_kind(actual) != json_kind(expected):
        yield f"{path}: {json_kind(actual)} where {source} has {json_kind(expected)}"
        return
    if path.rpartition(".")[2] in free_form:
        return
    if isinstance(expected, dict) and path in maps:
        assert isinstance(actual, dict)
        example = next(iter(expected.values()))
        for key, value in actual.items():
            yield from shape_problems(value, example, path=f"{path}.{key}", **rules)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        for key in expected.keys() - actual.keys():
            if f"{path}.{key}" not in optional:
                yield f"{path}.{key}: missing"
        for key in actual.keys() - expected.keys():
            if f"{path}.{key}" not in optional:
                yield f"{path}.{key}: not in {source}'s body"
        for key in expected.keys() & actual.keys():
            yield from shape_problems(actual[key], expected[key], path=f"{path}.{key}", **rules)
    elif isinstance(expected, list) and expected:
        assert isinstance(actual, list)
        for item in actual:
            yield from shape_problems(item, expected[0], path=f"{path}[]", **rules)


def poll(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ManualClock:
    """Epoch seconds that move only when a test says so (the simulator's runs' time)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Slots:
    """ReadSlots as the poller passes them, minus budget and gate: every outcome comes
    through, and each read's mode is kept."""

    def __init__(self) -> None:
        self.modes: list[str] = []
        self.held_until: float | None = None

    async def read(self, mode: str, call: Callable[[], Awaitable[T]]) -> T:
        self.modes.append(mode)
        return await call()

    def read_at(self, at: float) -> None:
        self.held_until = at  # no poller here: the next cycle is the test's


def delivery_row(
    *, route: str, target: str, action: str, payload: dict[str, Any], at: float, delivery_id: int
) -> DeliveryRow:
    """The delivery the outbox hands a target to fire, created at ``at``."""
    return DeliveryRow(
        id=delivery_id,
        route=route,
        target=target,
        action=action,
        idempotency_key=f"{route}:evt-{delivery_id}",
        payload=payload,
        ordering_key=None,
        event_id=f"evt-{delivery_id}",
        state="firing",
        attempts=0,
        created_at=at,
        first_attempt_at=at,
        next_attempt_at=at,
        last_error=None,
        record=None,
    )


def run_row(
    fired: FireAccepted,
    fired_at: float,
    *,
    route: str,
    target: str,
    action: str,
    delivery_id: int,
    last_checked_at: float | None = None,
) -> RunRecord:
    """The run the outbox records for an accepted fire."""
    (run_id,) = fired.run_ids
    return RunRecord(
        run_id=run_id,
        delivery_id=delivery_id,
        route=route,
        target=target,
        action=action,
        idempotency_key=f"{route}:evt-{delivery_id}",
        event_id=f"evt-{delivery_id}",
        status="pending",
        fired_at=fired_at,
        last_checked_at=last_checked_at,
        ref=fired.ref,
    )
