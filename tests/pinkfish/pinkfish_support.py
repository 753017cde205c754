"""Shared pieces of the Pinkfish tests: the test seed, a clock moved by hand, the seed
document's example bodies (``fixtures/``) and a shape check against them; for the
target, the rows the outbox would hand it and a pass-through read budget.

:func:`assert_shape` compares structure, not values: the same keys, recursively, and the
same JSON types. Objects keyed by data (``stepStatus`` by step, ``resultUrls`` by file
name) are ``maps``: any keys, every value shaped like the example's first.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from brew_bridge.events import FireAccepted
from brew_bridge.store import DeliveryRow, RunRecord
from simulator_support import ManualClock as BaseClock
from simulator_support import Slots, delivery_row, poll, run_row, shape_problems

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


class ManualClock(BaseClock):
    """The shared hand-moved clock, at the document's run unless told otherwise."""

    def __init__(self, start: float = START) -> None:
        super().__init__(start)


def fixture(name: str) -> Any:
    """An example from the seed document (``fixtures/<name>.json``, without its source)."""
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data.get("body", data.get("headers"))


def assert_shape(
    actual: object,
    expected: object,
    *,
    maps: Collection[str] = MAPS,
    optional: Collection[str] = (),
) -> None:
    """``actual`` has exactly ``expected``'s keys and JSON types, recursively (paths
    like ``$.results[].exitCode``; ``optional`` ones may be on one side only)."""
    problems = list(
        shape_problems(actual, expected, source="the document", optional=optional, maps=maps)
    )
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


# -- the target's side --------------------------------------------------------------------


def delivery(
    action: str = "trg_hello", payload: dict[str, Any] | None = None, *, route: str = "research"
) -> DeliveryRow:
    return delivery_row(
        route=route,
        target="research",
        action=action,
        payload=payload if payload is not None else {"user_request": "process this data"},
        at=START,
        delivery_id=1,
    )


def run_of(
    fired: FireAccepted, fired_at: float, *, route: str = "research", action: str = "trg_hello"
) -> RunRecord:
    """The run the outbox records for an accepted fire."""
    return run_row(fired, fired_at, route=route, target="research", action=action, delivery_id=1)
