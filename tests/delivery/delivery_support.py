"""Shared parts of the delivery and end-to-end tests: a real simulator, outbox file and worker."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from brew_bridge.config import (
    BrewConfig,
    BridgeConfig,
    DispatcherConfig,
    OutboxConfig,
    PollerConfig,
    RateLimit,
    RateLimitsConfig,
    RetryConfig,
    ServerConfig,
)
from brew_bridge.events import NewDelivery, Routed, SourceRecord
from brew_bridge.store import Outbox
from brew_bridge.testing.simulator import SimulatorHandle
from brew_bridge.worker import Worker

API_KEY = "brew_delivery_test_key"
SCHEMA = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
    ],
}


def automation(auto_id: str, *, outcome: str = "completed", ms: float = 300, **kw: Any) -> Any:
    return {"automationId": auto_id, "outcome": outcome, "durationMs": ms, **kw}


def trigger(*automations: Any) -> dict[str, Any]:
    return {"payloadSchema": SCHEMA, "automations": list(automations)}


def seed(triggers: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"keys": {API_KEY: {"scopes": ["all"]}}, "triggers": dict(triggers), **extra}


def bridge_config(
    tmp_path: Path,
    sim: SimulatorHandle | None,
    *,
    brew: Mapping[str, Any] | None = None,
    retry: Mapping[str, Any] | None = None,
    dispatcher: Mapping[str, Any] | None = None,
    poller: Mapping[str, Any] | None = None,
    limits: Mapping[str, RateLimit] | None = None,
    **sections: Any,
) -> BridgeConfig:
    """A config for tests: fast retries and polls, the simulator as Brew, port 0.

    ``sim`` None: no Brew simulator (a config whose routes fire other targets only);
    ``sections``: more of the config as it is (``targets``, ``routes``, ``webhooks``,
    ``kafka``, ...)."""
    retry_cfg = RetryConfig(
        **{
            "base_delay_seconds": 0.05,
            "max_delay_seconds": 0.5,
            "retry_after_cap_seconds": 2.0,
            "max_attempts": 30,
            **(retry or {}),
        }
    )
    brew_cfg = BrewConfig(
        **{
            **({"base_url": sim.base_url} if sim is not None else {}),
            "api_key": SecretStr(API_KEY),
            "timeout_seconds": 2.0,
            "connect_timeout_seconds": 1.0,
            "retry": retry_cfg,
            "rate_limits": RateLimitsConfig(**(limits or {})),
            **(brew or {}),
        }
    )
    return BridgeConfig(
        outbox=OutboxConfig(path=str(tmp_path / "outbox.db"), synchronous="NORMAL"),
        brew=brew_cfg,
        dispatcher=DispatcherConfig(**{"idle_poll_seconds": 0.05, **(dispatcher or {})}),
        poller=PollerConfig(**{"interval_seconds": 0.25, **(poller or {})}),
        server=ServerConfig(host="127.0.0.1", port=0),
        **sections,
    )


_offsets = itertools.count()


def queue(
    config: BridgeConfig, items: list[tuple[str, str, str, dict[str, Any]]]
) -> list[NewDelivery]:
    """Store (route, trigger, key, payload) deliveries in the outbox as ingest would."""
    deliveries = [
        NewDelivery(route, "brew", trig, key, payload, ordering_key=payload.get("email"))
        for route, trig, key, payload in items
    ]
    routed = [
        Routed(
            record=SourceRecord("kafka", "events", f"0:{next(_offsets)}", None, b"{}"),
            deliveries=(d,),
        )
        for d in deliveries
    ]
    outbox = Outbox.open(config.outbox.path)
    try:
        outbox.store_batch(routed, time.time())
    finally:
        outbox.close()
    return deliveries


@asynccontextmanager
async def running_worker(
    config: BridgeConfig, *, consume: bool = False, **kw: Any
) -> AsyncIterator[Worker]:
    """A worker serving on a free port, without Kafka unless ``consume`` (then its
    source and result/DLQ topics are the config's); stopped (gracefully) on exit."""
    worker = Worker(config, consume=consume, env={}, **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = asyncio.create_task(worker.started.wait())
    done, _ = await asyncio.wait({task, started}, timeout=15, return_when="FIRST_COMPLETED")
    if task in done:
        task.result()
    assert started in done, "the worker did not start"
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 20.0,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def outbox_view(config: BridgeConfig) -> Outbox:
    return Outbox.open(config.outbox.path)


def all_ended(config: BridgeConfig) -> bool:
    outbox = outbox_view(config)
    try:
        stats = outbox.stats(time.time())
        return stats.backlog == 0 and stats.live_runs == 0
    finally:
        outbox.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{label="v",...}': value}``."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def scrape(worker: Worker) -> dict[str, float]:
    """The worker's ``/metrics`` over HTTP, parsed."""
    async with httpx.AsyncClient() as http:
        return parse_metrics((await http.get(f"http://127.0.0.1:{worker.port}/metrics")).text)


def metric(values: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        pairs = dict(p.split("=", 1) for p in rest.rstrip("}").split(",") if p)
        if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
            total += value
    return total


def fires_by_key(sim: SimulatorHandle) -> dict[str, list[dict[str, Any]]]:
    """The simulator's fire requests, grouped by Idempotency-Key."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in sim.requests():
        if entry["method"] == "POST" and entry["path"].endswith("/fire"):
            out.setdefault(entry["idempotencyKey"], []).append(entry)
    return out


def sim_runs_by_email(sim: SimulatorHandle) -> Counter[str | None]:
    """How many runs the simulator started per recipient: one fire accepted per email
    (each test uses one email per key) starts one run per published automation."""
    return Counter(run.recipient_email for run in list(sim.state.run_order))


def fire_at_brew(
    sim: SimulatorHandle, trigger_id: str, key: str, payload: Mapping[str, Any]
) -> None:
    """A fire sent by someone else than the bridge (or an earlier attempt whose answer the
    bridge never heard), straight to the simulator with the bridge's key."""
    answer = httpx.post(
        f"{sim.base_url}/v1/automations/triggers/{trigger_id}/fire",
        json={"payload": dict(payload)},
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key},
    )
    assert answer.status_code == 200, answer.text
