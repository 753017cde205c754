"""Shared pieces of the Boring Marketing tests: the test seed, a clock moved by hand, the
seed document's example bodies (``fixtures/``, each with where it comes from), a shape
check against them, and the target's side (read slots, deliveries, run records).

:func:`assert_shape` compares structure, not values: the same keys, recursively, and the
same JSON types; with ``more=True`` the actual body may carry keys the example lacks
(the document's list entries are cut short).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from brew_bridge.config.targets import BoringMarketingConfig
from brew_bridge.events import FireAccepted
from brew_bridge.store import DeliveryRow, RunRecord
from simulator_support import ManualClock as BaseClock
from simulator_support import Slots, delivery_row, json_kind, run_row

__all__ = [
    "BRAND",
    "KEY",
    "OTHER_BRAND",
    "OTHER_KEY",
    "REVOKED_KEY",
    "START",
    "TEST_SEED",
    "ManualClock",
    "Slots",
    "assert_shape",
    "config",
    "delivery",
    "fire",
    "fixture",
    "run_record",
]


FIXTURES = Path(__file__).with_name("fixtures")
KEY = "bm_54249af28748e0e24b4d2782122e2de9335627ef0f800747"  # the document's key format
OTHER_KEY = "bm_0123456789abcdef0123456789abcdef"  # acts for OTHER_BRAND only
REVOKED_KEY = "bm_deadbeefdeadbeefdeadbeefdeadbeef"
BRAND = "ea502f67-338b-47e4-a245-5c4eea8bd8d2"
OTHER_BRAND = "0f3c9a1e-5b7d-4e2a-8c6f-1d9b3a5e7c20"
START = 1_775_556_000.0  # 2026-04-07T10:00:00Z, the document's run

TEST_SEED: dict[str, Any] = {
    "brands": {BRAND: {"name": "Acme", "domain": "acme.example"}, OTHER_BRAND: {}},
    "keys": {
        KEY: {},
        OTHER_KEY: {"brands": [OTHER_BRAND]},
        REVOKED_KEY: {"revoked": True},
    },
    "pipelines": {
        "analyze": {"queuedMs": 1000, "stageMs": 60_000, "failStage": "evidence_collection"},
        "discover": {"queuedMs": 1000, "stageMs": 600_000},
        "score": {"queuedMs": 1000, "stageMs": 90_000, "outcome": "failed"},
    },
}


class ManualClock(BaseClock):
    """The shared hand-moved clock, at the document's run unless told otherwise."""

    def __init__(self, start: float = START) -> None:
        super().__init__(start)


def fixture(name: str) -> Any:
    """An example body of the seed document (``fixtures/<name>.json``, without its source)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["body"]


def _problems(actual: object, expected: object, path: str, more: bool) -> Iterator[str]:
    if json_kind(actual) != json_kind(expected):
        yield f"{path}: {json_kind(actual)} where the document has {json_kind(expected)}"
    elif isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() - actual.keys():
            yield f"{path}.{key}: missing"
        if not more:
            for key in actual.keys() - expected.keys():
                yield f"{path}.{key}: not in the document's body"
        for key in expected.keys() & actual.keys():
            yield from _problems(actual[key], expected[key], f"{path}.{key}", more)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            yield f"{path}: {len(actual)} items where the document has {len(expected)}"
        for i, (item, example) in enumerate(zip(actual, expected, strict=False)):
            yield from _problems(item, example, f"{path}[{i}]", more)


def assert_shape(actual: object, expected: object, *, more: bool = False) -> None:
    """``actual`` has ``expected``'s keys and JSON types, recursively, list items pairwise
    (``more``: and maybe other keys too)."""
    problems = list(_problems(actual, expected, "$", more))
    assert not problems, "shape differs from the document's:\n  " + "\n  ".join(problems)


def fire(
    client: httpx.Client,
    endpoint: str = "analyze",
    brand: str = BRAND,
    *,
    key: str | None = KEY,
    body: Any = None,
) -> httpx.Response:
    """``POST /brands/{brand}/{endpoint}`` as the document's curl sends it."""
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post(f"/brands/{brand}/{endpoint}", headers=headers, json=body)


# -- the target's side --------------------------------------------------------------------


def config(base_url: str, **settings: Any) -> BoringMarketingConfig:
    return BoringMarketingConfig.model_validate(
        {"kind": "boring_marketing", "base_url": base_url, "brand_id": BRAND, **settings}
    )


def delivery(
    action: str = "analyze", payload: dict[str, Any] | None = None, *, delivery_id: int = 1
) -> DeliveryRow:
    return delivery_row(
        route="growth",
        target="growth",
        action=action,
        payload=payload if payload is not None else {"note": "signed up"},
        at=START,
        delivery_id=delivery_id,
    )


def run_record(
    fired: FireAccepted,
    fired_at: float,
    *,
    action: str = "analyze",
    last_checked_at: float | None = None,
    delivery_id: int = 1,
) -> RunRecord:
    """The run the outbox records for an accepted fire."""
    return run_row(
        fired,
        fired_at,
        route="growth",
        target="growth",
        action=action,
        delivery_id=delivery_id,
        last_checked_at=last_checked_at,
    )
