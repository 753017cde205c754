"""brew-bridge: business events in, Brew automation runs out, every run watched to its end.

The public API is re-exported here; everything else is reachable by module
(``brew_bridge.store.outbox``, ``brew_bridge.sim``, ...), but only these names are promised.
"""

# Set before the imports below: client.py reads it for its User-Agent.
__version__ = "0.1.0"

from brew_bridge.config import BridgeConfig, load_config
from brew_bridge.errors import (
    ApiError,
    AuthError,
    BridgeError,
    ConfigError,
    ConfigProblem,
    RateLimited,
    SinkError,
    SourceError,
    StoreError,
    TargetError,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import (
    NewDeadLetter,
    NewDelivery,
    Reason,
    Routed,
    SourceRecord,
)
from brew_bridge.mapping.routing import compile_routes, route_record
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store.outbox import Outbox
from brew_bridge.targets.brew.client import BrewClient, FireResult, RunInfo, RunPage

__all__ = [
    "ApiError",
    "AuthError",
    "BrewClient",
    "BridgeConfig",
    "BridgeError",
    "ConfigError",
    "ConfigProblem",
    "FireResult",
    "Metrics",
    "NewDeadLetter",
    "NewDelivery",
    "Outbox",
    "RateLimited",
    "Reason",
    "Routed",
    "RunInfo",
    "RunPage",
    "SinkError",
    "SourceError",
    "SourceRecord",
    "StoreError",
    "TargetError",
    "TransportError",
    "UnknownOutcome",
    "__version__",
    "compile_routes",
    "load_config",
    "route_record",
]
