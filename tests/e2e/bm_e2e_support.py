"""The Boring Marketing end-to-end tests' parts: a seed, a ``targets:`` entry, routes,
events, and views of what the simulator saw and what the outbox recorded.

Events reach the worker as a producer sends them: over the webhook source ``app``
(scheme none, the delivery id in ``X-Event-Id``) or on a Kafka topic; the routes map
them to a pipeline of the brand the event names (``brand_id: event.brand``: an event
without one fires for the target's ``brand_id``). The worker, the config builder and
the waits are the delivery tests' (delivery_support).

Time is compressed, never skipped: the simulator's stages last a tenth of a second, a
run is stuck after a second without stage progress, and the target checks its runs
every 0.2 s instead of the document's 10 s / 5 s (its poll interval settings; the
child-process test keeps the document's). Everything else (the worker, its lanes, HTTP,
the outbox file) is what runs in production.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from delivery_support import bridge_config

from brew_bridge.config import BridgeConfig
from brew_bridge.sim.boring_marketing.pipelines import FULL_STAGES
from brew_bridge.store import DeadLetterRow, Outbox, RunRecord
from brew_bridge.testing.boring_marketing import BoringMarketingSimulatorHandle
from brew_bridge.worker import Worker

__all__ = [
    "BRAND",
    "DEFAULT_BRAND",
    "KEY",
    "OTHER_BRAND",
    "OUTSIDER_KEY",
    "ROUTE",
    "SEED",
    "SPARE_KEY",
    "STAGES",
    "TARGET",
    "bm_config",
    "bm_target",
    "cancels",
    "dead_letters",
    "deliveries",
    "event",
    "fires",
    "key_of",
    "list_reads",
    "readyz",
    "route",
    "run_counts",
    "runs_of",
    "send",
]

TARGET = "growth"  # the targets: entry's name
ROUTE = "bm-refresh"
SOURCE = "app"  # the webhook source the events come in on
EVENT_TYPE = "brand.refresh"
STAGES = FULL_STAGES  # what /analyze goes through, in order

# Only these keys are valid (a keys section turns allowAnyKey off): an accepted fire is
# proof that X-API-Key carried KEY. OUTSIDER_KEY is someone else's (another app of the
# same account) acting for the same brands; SPARE_KEY is the key rotated in.
KEY = "bm_e2e7c41d09a2b36f58e1d4c7a90b3e25f6"
OUTSIDER_KEY = "bm_0utsider5d2e8a1c9b4f7036e2d5a8c1b"
SPARE_KEY = "bm_5pare9b8a7c6d5e4f3a2b1c0d9e8f7a6b5"
BRAND = "ea502f67-338b-47e4-a245-5c4eea8bd8d2"  # the document's brand
OTHER_BRAND = "0f3c9a1e-5b7d-4e2a-8c6f-1d9b3a5e7c20"
DEFAULT_BRAND = "7d1e4b2a-9c8f-4e6d-b5a3-2f1e0d9c8b7a"  # targets.growth.brand_id

SEED: dict[str, Any] = {
    "brands": {
        BRAND: {"name": "Acme", "domain": "acme.example"},
        OTHER_BRAND: {"name": "Globex", "domain": "globex.example"},
        DEFAULT_BRAND: {"name": "Initech", "domain": "initech.example"},
    },
    "keys": {KEY: {}, OUTSIDER_KEY: {}, SPARE_KEY: {}},
    "pipelines": {
        # Six stages of 0.1 s: a whole analysis in about 0.7 s.
        "analyze": {"queuedMs": 50, "stageMs": 100},
        "brief": {"queuedMs": 0, "stageMs": 50},
        "score": {"queuedMs": 0, "stageMs": 50},
    },
}

LIFTED = {
    "fire": {"limit": 10_000, "window_seconds": 10},
    "run_read": {"limit": 10_000, "window_seconds": 10},
}
FAST_RETRY = {"base_delay_seconds": 0.05, "max_delay_seconds": 0.3, "retry_after_cap_seconds": 1}


def bm_target(sim: BoringMarketingSimulatorHandle, **over: Any) -> dict[str, Any]:
    """The ``targets.growth`` entry: the simulator, KEY (as load_config leaves it, read
    from BM_API_KEY), a run stuck after 1 s, runs checked every 0.2 s (the document's
    pace: 10 s for analyze, 5 s else), fast retries, budgets out of the way."""
    return {
        "kind": "boring_marketing",
        "base_url": sim.base_url,
        "api_key_env": "BM_API_KEY",
        "api_key": KEY,
        "brand_id": DEFAULT_BRAND,
        "timeout_seconds": 1.0,
        "connect_timeout_seconds": 1.0,
        "stuck_after_seconds": 1.0,
        "pipeline_poll_interval_seconds": 0.2,
        "stage_poll_interval_seconds": 0.2,
        "rate_limits": LIFTED,
        "retry": FAST_RETRY,
        **over,
    }


def route(trigger: str = "analyze", **over: Any) -> dict[str, Any]:
    """A route taking ``brand.refresh`` events to the pipeline ``trigger`` of the brand
    the event names (else the target's), with the event's note as the pipeline's body."""
    return {
        "name": ROUTE,
        "target": TARGET,
        "trigger": trigger,
        "webhooks": [SOURCE],
        "match": {"type": EVENT_TYPE},
        "payload": {"brand_id": "event.brand", "note": "event.note"},
        **over,
    }


def bm_config(
    tmp_path: Path,
    sim: BoringMarketingSimulatorHandle,
    routes: Sequence[Mapping[str, Any]] | None = None,
    *,
    target: Mapping[str, Any] | None = None,
    **sections: Any,
) -> BridgeConfig:
    """bridge_config with no Brew, the Boring Marketing target, the webhook source and
    ``routes`` (default: :func:`route`)."""
    return bridge_config(
        tmp_path,
        None,
        targets={TARGET: bm_target(sim, **(target or {}))},
        webhooks={"sources": {SOURCE: {"scheme": "none", "id_header": "X-Event-Id"}}},
        routes=list(routes) if routes is not None else [route()],
        **sections,
    )


def event(n: int, brand: str | None = BRAND, *, type: str = EVENT_TYPE) -> dict[str, Any]:
    """Event ``evt-{n}`` for ``brand`` (None: the event names no brand)."""
    body: dict[str, Any] = {"id": f"evt-{n}", "type": type, "note": f"refresh number {n}"}
    if brand is not None:
        body["brand"] = brand
    return body


def key_of(body: Mapping[str, Any], route_name: str = ROUTE) -> str:
    """The Idempotency-Key (the outbox's) of an event on a route."""
    return f"{route_name}:{body['id']}"


async def send(worker: Worker, *bodies: Mapping[str, Any]) -> None:
    """POST each event to the worker's webhook source, as a producer would; each stored."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.webhook_port}") as http:
        for body in bodies:
            answer = await http.post(
                f"/webhooks/{SOURCE}",
                content=json.dumps(body),
                headers={"X-Event-Id": body["id"], "Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text


async def readyz(worker: Worker) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{worker.port}/readyz")


# -- what the simulator saw ------------------------------------------------------------


def fires(
    sim: BoringMarketingSimulatorHandle, endpoint: str | None = None, brand: str | None = None
) -> list[dict[str, Any]]:
    """The pipeline POSTs in the request log (cancels are not fires), oldest first."""
    out = []
    for entry in sim.requests():
        parts = entry["path"].split("/")  # "", "brands", brand, endpoint...
        if entry["method"] != "POST" or len(parts) < 4 or parts[1] != "brands":
            continue
        if parts[3] == "runs":
            continue
        if endpoint is not None and "/".join(parts[3:]) != endpoint:
            continue
        if brand is not None and parts[2] != brand:
            continue
        out.append(entry)
    return out


def cancels(sim: BoringMarketingSimulatorHandle) -> list[dict[str, Any]]:
    """``POST /brands/{brand}/runs/{run}/cancel`` requests, oldest first."""
    return [
        e
        for e in sim.requests()
        if e["method"] == "POST"
        and e["path"].startswith("/brands/")
        and e["path"].endswith("/cancel")
    ]


def list_reads(sim: BoringMarketingSimulatorHandle) -> list[dict[str, Any]]:
    """``GET /brands/{brand}/runs`` requests, oldest first."""
    return [
        e
        for e in sim.requests()
        if e["method"] == "GET" and e["path"].startswith("/brands/") and e["path"].endswith("/runs")
    ]


# -- what the bridge recorded -----------------------------------------------------------


def deliveries(config: BridgeConfig) -> dict[str, dict[str, Any]]:
    """Every delivery row by Idempotency-Key, as stored (state, result_code, attempts...)."""
    conn = sqlite3.connect(f"file:{config.outbox.path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM deliveries ORDER BY id").fetchall()
    finally:
        conn.close()
    return {row["idempotency_key"]: dict(row) for row in rows}


def runs_of(config: BridgeConfig, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    """The outbox's record of each of ``run_ids`` (missing ones left out)."""
    outbox = Outbox.open(config.outbox.path)
    try:
        found = {run_id: outbox.run(run_id) for run_id in run_ids}
    finally:
        outbox.close()
    return {k: v for k, v in found.items() if v is not None}


def run_counts(config: BridgeConfig, delivery_id: int) -> dict[str, int]:
    """The runs recorded for one delivery, by status."""
    outbox = Outbox.open(config.outbox.path)
    try:
        return outbox.run_counts(delivery_id)
    finally:
        outbox.close()


def dead_letters(config: BridgeConfig) -> list[DeadLetterRow]:
    outbox = Outbox.open(config.outbox.path)
    try:
        return outbox.dead_letters(limit=10_000)
    finally:
        outbox.close()
