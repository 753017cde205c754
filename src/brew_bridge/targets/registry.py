"""Every target kind, and how the worker opens one: the one place that names them all.

A new target is a new package beside ``targets/brew`` with an ``open_target`` and one
line here. Each opener is an async context manager that owns the target's HTTP client.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar

from brew_bridge.config import BrewConfig, BridgeConfig, RouteConfig
from brew_bridge.config.targets import BoringMarketingConfig, PinkfishConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import ConfigProblem
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.brew.apikey import brew_api_key
from brew_bridge.targets.brew.client import BrewClient, build_http_client
from brew_bridge.targets.brew.pollplan import PollSettings
from brew_bridge.targets.brew.target import BrewTarget
from brew_bridge.targets.keys import KeySource
from brew_bridge.typing import Clock, Target

__all__ = ["Opener", "TargetSettings", "api_key", "open_target", "target_settings"]

TargetSettings = BrewConfig | PinkfishConfig | BoringMarketingConfig
_Section = TypeVar("_Section", PinkfishConfig, BoringMarketingConfig)


class Opener(Protocol):
    def __call__(
        self,
        name: str,
        config: BridgeConfig,
        *,
        api_key: Callable[[], str],
        budgets: RateBudgets,
        metrics: Metrics,
        clock: Clock,
    ) -> contextlib.AbstractAsyncContextManager[Target]: ...


@contextlib.asynccontextmanager
async def _open_brew(
    name: str,
    config: BridgeConfig,
    *,
    api_key: Callable[[], str],
    budgets: RateBudgets,
    metrics: Metrics,
    clock: Clock,
) -> AsyncIterator[Target]:
    async with build_http_client(config.brew) as http:
        client = BrewClient(
            http,
            api_key=api_key,
            brand_id=config.brew.brand_id,
            budgets=budgets,
            metrics=metrics,
            api_shape=config.brew.api_shape,
        )
        yield BrewTarget(
            client,
            poll=PollSettings(interval=config.poller.interval_seconds),
            fetch_logs=config.poller.fetch_logs,
            clock=clock,
        )


def _section(config: BridgeConfig, name: str, kind: type[_Section]) -> _Section:
    section = config.targets[name]
    assert isinstance(section, kind)  # the registry maps each kind to its model
    return section


def _routes(config: BridgeConfig, name: str) -> list[RouteConfig]:
    return [r for r in config.routes if r.target == name]


# A target is imported only by the configs that use it.


def _open_pinkfish(
    name: str, config: BridgeConfig, **parts: Any
) -> contextlib.AbstractAsyncContextManager[Target]:
    from brew_bridge.targets import pinkfish

    section = _section(config, name, PinkfishConfig)
    return pinkfish.open_target(name, section, routes=_routes(config, name), **parts)


def _open_boring_marketing(
    name: str, config: BridgeConfig, **parts: Any
) -> contextlib.AbstractAsyncContextManager[Target]:
    from brew_bridge.targets import boring_marketing

    section = _section(config, name, BoringMarketingConfig)
    return boring_marketing.open_target(name, section, routes=_routes(config, name), **parts)


_OPENERS: Mapping[str, Opener] = {
    "brew": _open_brew,
    "pinkfish": _open_pinkfish,
    "boring_marketing": _open_boring_marketing,
}


def open_target(
    name: str,
    config: BridgeConfig,
    *,
    api_key: Callable[[], str],
    budgets: RateBudgets,
    metrics: Metrics,
    clock: Clock,
) -> contextlib.AbstractAsyncContextManager[Target]:
    """Open the target ``name`` of ``config`` (``brew`` or a ``targets:`` entry)."""
    kind = config.target_kinds[name]
    return _OPENERS[kind](
        name, config, api_key=api_key, budgets=budgets, metrics=metrics, clock=clock
    )


def target_settings(config: BridgeConfig, name: str) -> TargetSettings:
    """The settings every target has (timeouts, rate limits, retry), from ``brew:`` or
    its ``targets:`` entry."""
    return config.brew if name == "brew" else config.targets[name]


def api_key(config: BridgeConfig, name: str, env: Mapping[str, str] | None = None) -> KeySource:
    """The API key of target ``name``; raises ConfigError when there is none."""
    if name == "brew":
        return brew_api_key(config, env)
    environ = os.environ if env is None else env
    target = config.targets[name]
    loaded = target.api_key
    return KeySource(
        env_key=environ.get(target.api_key_env),
        path=target.api_key_file,
        loaded=loaded.get_secret_value() if loaded is not None else None,
        missing=ConfigProblem(
            "environment",
            target.api_key_env,
            f"no API key for targets.{name}: the worker cannot call it without one",
            f"set {target.api_key_env}, or targets.{name}.api_key_file to a file holding the key",
        ),
    )
