"""Shared pieces of the simulator tests: the test seed, Brew's fixtures, a shape check.

The fixtures under ``fixtures/brew/`` are byte-for-byte copies of
``shared/reference/brew-fixtures`` (bodies from the 9.3.0 SDK's spec and tests), kept in
the repository so the tests run on a clean clone; ``test_sim_fixtures_copy`` fails if the
copies drift from the originals where those are present.

:func:`assert_shape` compares structure, not values: the same keys, recursively, and the
same JSON types — so "this 404 is exactly Brew's envelope" is one line in a test.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from simulator_support import poll, shape_problems

__all__ = [
    "FIXTURES",
    "KEY",
    "SCHEMA",
    "TEST_SEED",
    "assert_request_id",
    "assert_shape",
    "fire",
    "fixture",
    "poll",
]

FIXTURES = Path(__file__).with_name("fixtures") / "brew"
KEY = "brew_test_key"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
        {"key": "plan", "type": "string", "required": False, "fallbackValue": "free"},
        {
            "key": "order",
            "type": "object",
            "required": False,
            "children": [{"key": "total", "type": "float", "required": True}],
        },
    ],
}

TEST_SEED: dict[str, Any] = {
    "triggers": {
        "tri_signup": {
            "title": "User signed up",
            "payloadSchema": SCHEMA,
            "automations": [
                {
                    "automationId": "auto_welcome",
                    "name": "Welcome flow",
                    "durationMs": 400,
                    "pendingMs": 100,
                },
                {"automationId": "auto_draft", "name": "Draft", "published": False},
            ],
        },
        "tri_two": {
            "title": "Order paid",
            "payloadSchema": SCHEMA,
            "automations": [
                {"automationId": "auto_receipt", "durationMs": 300, "pendingMs": 50},
                {
                    "automationId": "auto_upsell",
                    "durationMs": 300,
                    "pendingMs": 50,
                    "outcome": "failed",
                    "error": "Mailbox unavailable",
                },
            ],
        },
        "tri_drafts": {
            "title": "Only drafts",
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_unpublished", "published": False}],
        },
        "tri_slow": {
            "title": "Slow flow",
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_slow", "durationMs": 600_000, "pendingMs": 100}],
        },
    }
}


def fixture(relative: str) -> Any:
    """A Brew body from ``fixtures/brew/`` (e.g. ``"sdk-9.3.0-dts/fire_200_triggered.json"``)."""
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


# Objects whose keys depend on the trigger, not on Brew's contract: compared as objects only.
FREE_FORM = frozenset({"resolvedPayload", "payloadSchema"})


def assert_shape(
    actual: object,
    expected: object,
    *,
    optional: Collection[str] = (),
    any_type: Collection[str] = (),
) -> None:
    """``actual`` has exactly ``expected``'s keys and JSON types, recursively.

    Paths look like ``$.details.warnings`` and ``$.data[].completedAt`` (``[]``: every
    element, each compared with the fixture's first). A path in ``optional`` may be
    present on one side only; a path in ``any_type`` is not compared at all; objects under
    a key in :data:`FREE_FORM` are compared as objects only (their keys are the trigger's).
    """
    problems = list(
        shape_problems(
            actual,
            expected,
            source="Brew",
            optional=optional,
            any_type=any_type,
            free_form=FREE_FORM,
        )
    )
    assert not problems, "shape differs from Brew's:\n  " + "\n  ".join(problems)


def assert_request_id(response: httpx.Response) -> None:
    rid = response.headers.get("x-request-id", "")
    assert rid.startswith("req_"), rid
    assert len(rid) == 36, rid
    assert all(c in "0123456789abcdef" for c in rid[4:]), rid


def fire(
    client: httpx.Client,
    trigger: str = "tri_signup",
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    **extra: Any,
) -> httpx.Response:
    """POST …/fire with ``{payload}`` (+ ``extra`` body keys) and an optional header key."""
    body: dict[str, Any] = {"payload": payload if payload is not None else {"email": "a@b.co"}}
    body.update(extra)
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/v1/automations/triggers/{trigger}/fire", json=body, headers=headers)
