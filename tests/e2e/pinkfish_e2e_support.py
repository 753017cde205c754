"""The Pinkfish end-to-end tests' parts: a seed, a ``targets:`` entry, routes, events.

Events reach the worker the way a producer sends them: over the webhook source ``app``
(scheme none, the delivery id in ``X-Event-Id``) or on a Kafka topic; the routes map
them to Pinkfish payloads; the simulator's request log shows what the bridge sent.
The worker, the config builder and the waits are the delivery tests' (delivery_support).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from delivery_support import bridge_config

from brew_bridge.config import BridgeConfig
from brew_bridge.store import DeadLetterRow, Outbox, OutboxStats, RunRecord
from brew_bridge.testing.pinkfish import PinkfishSimulatorHandle
from brew_bridge.testing.simulator import SimulatorHandle
from brew_bridge.worker import Worker

TARGET = "research"  # the targets: entry's name
KEY = "pf_e2e_key_4b1d9e07c3a85f26"
ACCOUNT = "acme"
SOURCE = "app"  # the webhook source the events come in on

# Each kind of event: its route, its type, the trigger the route fires, how it ends.
KINDS: dict[str, tuple[str, str, str, str]] = {
    # kind: (route, event type, trigger, bridge status)
    "summary": ("pf-summary", "research.summarize", "trg_summary", "completed"),
    "failing": ("pf-research", "research.deep", "trg_research", "failed"),
    "slow": ("pf-crawl", "research.crawl", "trg_crawl", "timed_out"),
    # Runs that stay RUNNING until a test unsticks them (PinkfishSimulatorHandle.stick).
    "held": ("pf-held", "research.held", "trg_held", "completed"),
    # Runs that are COMPLETE before the bridge first reads them.
    "instant": ("pf-instant", "research.instant", "trg_instant", "completed"),
}

SEED: dict[str, Any] = {
    # Only this key is valid (a keys section turns allowAnyKey off): an accepted fire is
    # proof that X-API-KEY carried it.
    "keys": {KEY: {"account": ACCOUNT}},
    "triggers": {
        "trg_summary": {
            "automationName": "Summarize",
            "steps": ["Fetch", "Summarize"],
            "durationMs": 400,
            "pendingMs": 100,
            "designatedOutput": {"fileName": "summary.txt", "mimeType": "text/plain", "size": 42},
        },
        "trg_research": {
            "automationName": "Research",
            "steps": ["Fetch", "Summarize", "Send"],
            "durationMs": 600,
            "pendingMs": 100,
            "outcome": "FAILED",
        },
        "trg_crawl": {
            "automationName": "Crawl",
            "steps": ["Crawl"],
            "durationMs": 400,
            "pendingMs": 100,
            "outcome": "TIMEOUT",
        },
        "trg_held": {"automationName": "Held", "durationMs": 400, "pendingMs": 50, "stuck": True},
        "trg_instant": {"automationName": "Instant", "durationMs": 1},
    },
}

LIFTED = {
    "fire": {"limit": 10_000, "window_seconds": 10},
    "run_read": {"limit": 10_000, "window_seconds": 10},
}
FAST_RETRY = {"base_delay_seconds": 0.05, "max_delay_seconds": 0.3, "retry_after_cap_seconds": 1}


def pinkfish_target(sim: PinkfishSimulatorHandle, **over: Any) -> dict[str, Any]:
    """The ``targets.research`` entry: the simulator, its key (as load_config leaves it,
    read from PINKFISH_API_KEY), fast polls and retries, budgets out of the way."""
    return {
        "kind": "pinkfish",
        "base_url": sim.base_url,
        "api_key_env": "PINKFISH_API_KEY",
        "api_key": KEY,
        "timeout_seconds": 1.0,
        "connect_timeout_seconds": 1.0,
        "poll_interval_seconds": 0.1,
        "max_poll_interval_seconds": 0.5,
        "rate_limits": LIFTED,
        "retry": FAST_RETRY,
        **over,
    }


def route(kind: str, **over: Any) -> dict[str, Any]:
    """The route of ``kind``: its events' type, mapped to the Pinkfish workflow's input."""
    name, event_type, trigger, _ = KINDS[kind]
    return {
        "name": name,
        "target": TARGET,
        "trigger": trigger,
        "webhooks": [SOURCE],
        "match": {"type": event_type},
        "payload": {
            "user_request": "event.text",
            "requestedBy": "event.user.email",
            "channel": {"value": "brew-bridge"},
        },
        **over,
    }


def routes(*kinds: str, **over: Any) -> list[dict[str, Any]]:
    return [route(kind, **over) for kind in kinds]


def pinkfish_config(
    tmp_path: Path,
    pf: PinkfishSimulatorHandle,
    route_list: Sequence[Mapping[str, Any]],
    *,
    brew: SimulatorHandle | None = None,
    **sections: Any,
) -> BridgeConfig:
    """bridge_config with the Pinkfish target, the webhook source and ``route_list``
    (``brew``: the Brew simulator, for routes that fire Brew)."""
    return bridge_config(
        tmp_path,
        brew,
        targets={TARGET: pinkfish_target(pf)},
        webhooks={"sources": {SOURCE: {"scheme": "none", "id_header": "X-Event-Id"}}},
        routes=list(route_list),
        **sections,
    )


def event(kind: str, n: int) -> dict[str, Any]:
    """One event of ``kind`` (its id is ``{kind}-{n}``)."""
    return {
        "id": f"{kind}-{n}",
        "type": KINDS[kind][1],
        "text": f"{kind} request number {n}",
        "user": {"email": f"{kind}{n}@example.com"},
    }


def trigger_of(body: Mapping[str, Any]) -> str:
    """The trigger the route of this event fires."""
    return KINDS[body["id"].rsplit("-", 1)[0]][2]


def canonical(body: Any) -> str:
    """A JSON body as text that compares equal whatever its keys' order."""
    return json.dumps(body, sort_keys=True)


def mapped(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the route makes of an event: the body Pinkfish must receive."""
    return {
        "user_request": body["text"],
        "requestedBy": body["user"]["email"],
        "channel": "brew-bridge",
    }


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


def fires(sim: PinkfishSimulatorHandle) -> list[dict[str, Any]]:
    """The fire requests in the request log, oldest first."""
    return [
        e
        for e in sim.requests()
        if e["method"] == "POST" and e["path"].startswith("/ext/triggers/")
    ]


def accepted(sim: PinkfishSimulatorHandle) -> list[dict[str, Any]]:
    """The fires answered 200 (the work done, whether the answer arrived or not)."""
    return [e for e in fires(sim) if e["status"] == 200]


def reads(sim: PinkfishSimulatorHandle, what: str) -> Counter[str]:
    """``GET …/{what}`` requests (status or results) per run id."""
    return Counter(
        e["path"].split("/")[-2]
        for e in sim.requests()
        if e["method"] == "GET" and e["path"].endswith(f"/{what}")
    )


def sim_runs(sim: PinkfishSimulatorHandle, trigger: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.runs() if trigger is None or r["triggerId"] == trigger]


# -- what the bridge recorded -----------------------------------------------------------


def runs_of(config: BridgeConfig, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    """The outbox's record of each of ``run_ids`` (missing ones left out)."""
    outbox = Outbox.open(config.outbox.path)
    try:
        found = {run_id: outbox.run(run_id) for run_id in run_ids}
    finally:
        outbox.close()
    return {k: v for k, v in found.items() if v is not None}


def dead_letters(config: BridgeConfig) -> list[DeadLetterRow]:
    outbox = Outbox.open(config.outbox.path)
    try:
        return outbox.dead_letters(limit=10_000)
    finally:
        outbox.close()


def outbox_stats(config: BridgeConfig) -> OutboxStats:
    outbox = Outbox.open(config.outbox.path)
    try:
        return outbox.stats(0)
    finally:
        outbox.close()


def waiting(config: BridgeConfig, target: str) -> tuple[int, list[int]]:
    """The deliveries of ``target`` still to fire (pending, firing or waiting to retry),
    and the attempts counted on each of its deliveries so far (ids count from 1)."""
    outbox = Outbox.open(config.outbox.path)
    try:
        backlog = outbox.backlog(target)
        rows = [outbox.delivery(i) for i in range(1, 100)]
    finally:
        outbox.close()
    return backlog, [r.attempts for r in rows if r is not None and r.target == target]
