"""The configuration: the YAML file, ``BREW_BRIDGE_*`` overrides and the API key.

One module per concept: :mod:`~brew_bridge.config.sections` (the section models, which
the core imports alone), :mod:`~brew_bridge.config.routes` (the route language),
:mod:`~brew_bridge.config.load` (:class:`BridgeConfig`, :func:`load_config`, the routes
compiled once), with :mod:`~brew_bridge.config.yamlpos`,
:mod:`~brew_bridge.config.problems`, :mod:`~brew_bridge.config.checks` and
:mod:`~brew_bridge.config.secrets` behind them. The names callers use are here.
"""

from brew_bridge.config.load import (
    BridgeConfig,
    compiled_routes,
    config_from_mapping,
    config_router,
    load_config,
)
from brew_bridge.config.problems import ENV_PREFIX
from brew_bridge.config.routes import FieldSpec, MatchConfig, RouteConfig, TriggerConfig
from brew_bridge.config.secrets import API_KEY_ENV, API_KEY_FILE_ENV
from brew_bridge.config.sections import (
    BrewConfig,
    DispatcherConfig,
    KafkaConfig,
    LoggingConfig,
    OutboxConfig,
    PollerConfig,
    RateLimit,
    RateLimitsConfig,
    RetryConfig,
    ServerConfig,
    SharedLimitConfig,
)

__all__ = [
    "API_KEY_ENV",
    "API_KEY_FILE_ENV",
    "ENV_PREFIX",
    "BrewConfig",
    "BridgeConfig",
    "DispatcherConfig",
    "FieldSpec",
    "KafkaConfig",
    "LoggingConfig",
    "MatchConfig",
    "OutboxConfig",
    "PollerConfig",
    "RateLimit",
    "RateLimitsConfig",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "SharedLimitConfig",
    "TriggerConfig",
    "compiled_routes",
    "config_from_mapping",
    "config_router",
    "load_config",
]
