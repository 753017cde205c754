"""The Pinkfish target (seed 003, "Async Polling"): workflow triggers fired and followed.

:func:`open_target` is what the worker calls for a ``targets:`` entry of ``kind:
pinkfish``. See docs/targets/pinkfish.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from brew_bridge.config import RouteConfig
from brew_bridge.config.targets import PinkfishConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.http import build_http_client
from brew_bridge.targets.pinkfish.client import PinkfishClient
from brew_bridge.targets.pinkfish.poll import Pace
from brew_bridge.targets.pinkfish.target import PinkfishTarget
from brew_bridge.typing import Clock, Target

__all__ = ["PinkfishClient", "PinkfishTarget", "open_target"]


def open_target(
    name: str,
    config: PinkfishConfig,
    *,
    api_key: Callable[[], str],
    budgets: RateBudgets,
    metrics: Metrics,
    clock: Clock,
    routes: Sequence[RouteConfig],
) -> contextlib.AbstractAsyncContextManager[Target]:
    """The Pinkfish target named ``name``, its HTTP client open while it is entered."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Target]:
        async with build_http_client(
            config.base_url,
            timeout=config.timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
            max_connections=config.max_connections,
        ) as http:
            client = PinkfishClient(
                http, target=name, api_key=api_key, budgets=budgets, metrics=metrics, clock=clock
            )
            yield PinkfishTarget(
                name,
                client,
                pace=Pace(
                    interval=config.poll_interval_seconds,
                    max_interval=config.max_poll_interval_seconds,
                ),
                fetch_results=config.fetch_results,
                fire_again=[
                    route.name
                    for route in routes
                    # RouteConfig.on_unknown_outcome: "dead_letter" (default) | "fire_again"
                    if route.on_unknown_outcome == "fire_again"
                ],
                key_env=config.api_key_env,
            )

    return opened()
