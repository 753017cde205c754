"""Shared pieces of the Pinkfish tests: the test seed, a clock moved by hand, the seed
document's example bodies (``fixtures/``) and a shape check against them; for the
target, the rows the outbox would hand it and a pass-through read budget.

:func:`assert_shape` compares structure, not values: the same keys, recursively, and the
same JSON types. Objects keyed by data (``stepStatus`` by step, ``resultUrls`` by file
name) are ``maps``: any keys, every value shaped like the example's first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from brew_bridge.events import FireAccepted
from brew_bridge.store import DeliveryRow, RunRecord

T = TypeVar("T")

__all__ = [
    "KEY",
    "MAPS",
    "OTHER_KEY",
    "REVOKED_KEY",
    "START",
    "TEST_SEED",
    "ManualClock",
    "Slots",
    "assert_shape",
    "delivery",
    "fire",
    "fixture",
    "poll",
    "read",
    "run_of",
]

FIXTURES = Path(__file__).with_name("fixtures")
KEY = "pf_key_acme_0123456789"
OTHER_KEY = "pf_key_globex_987654321"  # another account's key
REVOKED_KEY = "pf_key_acme_revoked_00"
START = 1_778_786_207.851669  # the document's run: 2026-05-14T19:16:47.85Z

TEST_SEED: dict[str, Any] = {
    "keys": {
        KEY: {"account": "acme"},
        OTHER_KEY: {"account": "globex"},
        REVOKED_KEY: {"account": "acme", "revoked": True},
    },
    "triggers": {
        "trg_hello": {
            "automationId": "d831ue4rccbc73knbi80",
            "automationName": "Hello World",
            "automationVersion": 3,
            "durationMs": 2000,
            "pendingMs": 200,
        },
        "trg_steps": {
            "automationName": "Research",
            "steps": ["Fetch", "Summarize", "Send"],
            "durationMs": 3200,
            "pendingMs": 200,
            "outcome": "FAILED",
        },
        "trg_timeout": {"durationMs": 1000, "pendingMs": 100, "outcome": "TIMEOUT"},
        "trg_output": {
            "durationMs": 500,
            "designatedOutput": {"fileName": "retrieved-poem.txt", "size": 117},
        },
        "trg_stuck": {"durationMs": 500, "pendingMs": 100, "stuck": True},
        "trg_globex": {"account": "globex"},
    },
}

# The example bodies' objects keyed by data rather than by the contract.
MAPS = frozenset({"$.stepStatus", "$.stepInfo", "$.results[].resultUrls"})


class ManualClock:
    """Epoch seconds that move only when a test says so (the simulator's runs' time)."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fixture(name: str) -> Any:
    """An example from the seed document (``fixtures/<name>.json``, without its source)."""
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data.get("body", data.get("headers"))


_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    type(None): "null",
    dict: "object",
    list: "array",
}


def _kind(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _problems(
    actual: object, expected: object, path: str, maps: Collection[str], optional: Collection[str]
) -> Iterator[str]:
    if _kind(actual) != _kind(expected):
        yield f"{path}: {_kind(actual)} where the document has {_kind(expected)}"
        return
    if isinstance(expected, dict) and path in maps:
        assert isinstance(actual, dict)
        example = next(iter(expected.values()))
        for key, value in actual.items():
            yield from _problems(value, example, f"{path}.{key}", maps, optional)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        for key in expected.keys() - actual.keys():
            if f"{path}.{key}" not in optional:
                yield f"{path}.{key}: missing"
        for key in actual.keys() - expected.keys():
            if f"{path}.{key}" not in optional:
                yield f"{path}.{key}: not in the document's body"
        for key in expected.keys() & actual.keys():
            yield from _problems(actual[key], expected[key], f"{path}.{key}", maps, optional)
    elif isinstance(expected, list) and expected:
        assert isinstance(actual, list)
        for item in actual:
            yield from _problems(item, expected[0], f"{path}[]", maps, optional)


def assert_shape(
    actual: object,
    expected: object,
    *,
    maps: Collection[str] = MAPS,
    optional: Collection[str] = (),
) -> None:
    """``actual`` has exactly ``expected``'s keys and JSON types, recursively (paths
    like ``$.results[].exitCode``; ``optional`` ones may be on one side only)."""
    problems = list(_problems(actual, expected, "$", maps, optional))
    assert not problems, "shape differs from the document's:\n  " + "\n  ".join(problems)


def fire(
    client: httpx.Client,
    trigger: str = "trg_hello",
    payload: Any = None,
    *,
    key: str | None = KEY,
    wait: str | None = "false",
) -> httpx.Response:
    """``POST /ext/triggers/{trigger}`` as the document's curl sends it."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-KEY"] = key
    if wait is not None:
        headers["x-api-wait"] = wait
    body = payload if payload is not None else {"user_request": "process this data"}
    return client.post(f"/ext/triggers/{trigger}", content=json.dumps(body), headers=headers)


def read(
    client: httpx.Client, fired: httpx.Response, what: str = "status", *, key: str = KEY
) -> httpx.Response:
    """``GET /ext/webhook/{key}/runs/{automationId}/{runId}/{what}`` of a fire's run."""
    automation_id = fired.headers["X-Pf-Automation-Id"]
    run_id = fired.headers["X-Pf-Run-Id"]
    return client.get(f"/ext/webhook/{key}/runs/{automation_id}/{run_id}/{what}")


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


# -- the target's side --------------------------------------------------------------------


class Slots:
    """ReadSlots as the poller passes them, minus budget and gate: every outcome comes
    through, and each read's mode is kept."""

    def __init__(self) -> None:
        self.modes: list[str] = []

    async def read(self, mode: str, call: Callable[[], Awaitable[T]]) -> T:
        self.modes.append(mode)
        return await call()


def delivery(
    action: str = "trg_hello", payload: dict[str, Any] | None = None, *, route: str = "research"
) -> DeliveryRow:
    return DeliveryRow(
        id=1,
        route=route,
        target="research",
        action=action,
        idempotency_key=f"{route}:evt-1",
        payload=payload if payload is not None else {"user_request": "process this data"},
        ordering_key=None,
        event_id="evt-1",
        state="firing",
        attempts=0,
        created_at=START,
        first_attempt_at=START,
        next_attempt_at=START,
        last_error=None,
        record=None,
    )


def run_of(
    fired: FireAccepted, fired_at: float, *, route: str = "research", action: str = "trg_hello"
) -> RunRecord:
    """The run the outbox records for an accepted fire."""
    (run_id,) = fired.run_ids
    return RunRecord(
        run_id=run_id,
        delivery_id=1,
        route=route,
        target="research",
        action=action,
        idempotency_key=f"{route}:evt-1",
        event_id="evt-1",
        status="pending",
        fired_at=fired_at,
        last_checked_at=None,
        ref=fired.ref,
    )
