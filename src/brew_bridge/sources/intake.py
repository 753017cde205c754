"""The intake of one source, built from the config: the same for every source kind."""

from __future__ import annotations

import time
from functools import partial

from brew_bridge.config import BridgeConfig, config_router
from brew_bridge.core.health import OutboxHealth
from brew_bridge.core.intake import Intake, IntakeObserver
from brew_bridge.core.routing import RoutingProcess
from brew_bridge.mapping.routing import CompiledRoutes, route_record
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import Outbox
from brew_bridge.typing import Clock

__all__ = ["source_intake"]


def source_intake(
    config: BridgeConfig,
    routes: CompiledRoutes,
    outbox: Outbox,
    metrics: Metrics,
    *,
    source: str,
    routing_setting: str | None = None,
    routing_workers: int = 0,
    observer: IntakeObserver | None = None,
    health: OutboxHealth | None = None,
    clock: Clock = time.time,
) -> Intake:
    """An intake routing with ``routes`` into ``outbox`` under the outbox's water marks
    and stale-replay rule; ``source`` labels its metrics. With ``routing_workers`` 1 it
    routes in a child process, which ``routing_setting`` (the config key) turns off."""
    routing = (
        RoutingProcess(
            partial(config_router, config),
            name="brew-bridge-routing",
            setting=routing_setting or "routing_workers",
        )
        if routing_workers
        else None
    )
    return Intake(
        partial(route_record, routes=routes),
        outbox,
        metrics,
        source=source,
        high_water=config.outbox.high_water,
        low_water=config.outbox.low_water,
        observer=observer,
        routing=routing,
        health=health,
        clock=clock,
        stale_after_seconds=config.outbox.stale_after_seconds,
    )
