"""The Boring Marketing target (seed 004, "Polling Runs"): pipelines run for a brand.

A route names it with ``target: <name>`` and its ``trigger:`` is the pipeline endpoint
(:func:`pipeline_problem` says whether it is one). See docs/targets/boring-marketing.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from brew_bridge.config import RouteConfig
from brew_bridge.config.targets import BoringMarketingConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.boring_marketing.client import BoringMarketingClient
from brew_bridge.targets.boring_marketing.target import BoringMarketingTarget, classify
from brew_bridge.targets.boring_marketing.wire import pipeline_problem
from brew_bridge.targets.http import build_http_client
from brew_bridge.typing import Clock, Target

__all__ = ["BoringMarketingTarget", "classify", "open_target", "pipeline_problem"]


@contextlib.asynccontextmanager
async def open_target(
    name: str,
    config: BoringMarketingConfig,
    *,
    api_key: Callable[[], str],
    budgets: RateBudgets,
    metrics: Metrics,
    clock: Clock,
    routes: Sequence[RouteConfig],
) -> AsyncIterator[Target]:
    """The target ``name`` over its own HTTP client, closed on exit. ``routes`` (the
    routes firing it) carry no setting of this target's."""
    async with build_http_client(
        config.base_url,
        timeout=config.timeout_seconds,
        connect_timeout=config.connect_timeout_seconds,
        max_connections=config.max_connections,
    ) as http:
        client = BoringMarketingClient(
            http, target=name, api_key=api_key, budgets=budgets, metrics=metrics, clock=clock
        )
        yield BoringMarketingTarget(name, client, config, metrics=metrics)
