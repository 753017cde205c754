"""Every source a config names, built and run together.

The queue kinds are looked up here by name (``sources.<kind>``): a new kind is a new
package beside ``sources/rabbit`` with a ``build_<kind>_source`` and one line below; the
core never sees any of them.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import Final

from brew_bridge.config import BridgeConfig
from brew_bridge.config.queues import QueueSourceConfig
from brew_bridge.core.health import OutboxHealth
from brew_bridge.core.intake import Intake, IntakeObserver, IntakeSummary
from brew_bridge.mapping.routing import CompiledRoutes
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.intake import source_intake
from brew_bridge.sources.queue import QueueSource
from brew_bridge.store import Outbox
from brew_bridge.typing import PullSource

__all__ = ["Sources", "build_queue_sources"]

Builder = Callable[[str, QueueSourceConfig, Intake], QueueSource]

# kind -> the module and function that build its source (imported only when used).
_BUILDERS: Final = {
    "rabbit": ("brew_bridge.sources.rabbit", "build_rabbit_source"),
    "nats": ("brew_bridge.sources.nats", "build_nats_source"),
    "redis": ("brew_bridge.sources.redis", "build_redis_source"),
}


def _builder(kind: str) -> Builder:
    module, function = _BUILDERS[kind]
    built: Builder = getattr(importlib.import_module(module), function)
    return built


def build_queue_sources(
    config: BridgeConfig,
    routes: CompiledRoutes,
    outbox: Outbox,
    metrics: Metrics,
    *,
    observer: IntakeObserver | None = None,
    health: OutboxHealth | None = None,
) -> list[QueueSource]:
    """A source for every ``sources.<kind>.<name>`` some route reads (not connected)."""
    built = []
    for qualified, source_config in config.sources.declared().items():
        kind, _, name = qualified.partition(".")
        if name not in routes.streams_of(kind):
            continue  # declared, read by no route: nothing would consume its records
        intake = source_intake(
            config,
            routes,
            outbox,
            metrics,
            source=kind,
            routing_setting=f"sources.{qualified}.routing_workers",
            routing_workers=source_config.routing_workers,
            observer=observer,
            health=health,
        )
        built.append(_builder(kind)(name, source_config, intake))
    return built


class Sources:
    """Several pull sources as one: run together, drained together; the first that
    fails stops the others (the worker then stops with its error)."""

    def __init__(self, sources: Sequence[PullSource]) -> None:
        self.sources = tuple(sources)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for source in self.sources:
                group.create_task(source.run(stop))

    async def drain(self) -> IntakeSummary:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(source.drain()) for source in self.sources]
        return IntakeSummary.total(task.result() for task in tasks)
