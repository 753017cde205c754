"""brew-bridge: business events in, Brew automation runs out, every run watched to its end.

The public API is re-exported here; everything else is reachable by module
(``brew_bridge.store``, ``brew_bridge.core.intake``, ``brew_bridge.sim.brew``, ...), but
only these names are promised. The map of the packages is docs/ARCHITECTURE.md.
"""

from brew_bridge.config import BridgeConfig, compiled_routes, load_config
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
    Unsupported,
)
from brew_bridge.events import (
    FireAccepted,
    NewDeadLetter,
    NewDelivery,
    Reason,
    Routed,
    RunRead,
    SourceRecord,
)
from brew_bridge.mapping.routing import route_record
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import Outbox
from brew_bridge.targets.brew.client import BrewClient, FireResult, RunInfo, RunPage
from brew_bridge.version import __version__

__all__ = [
    "ApiError",
    "AuthError",
    "BrewClient",
    "BridgeConfig",
    "BridgeError",
    "ConfigError",
    "ConfigProblem",
    "FireAccepted",
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
    "RunRead",
    "SinkError",
    "SourceError",
    "SourceRecord",
    "StoreError",
    "TargetError",
    "TransportError",
    "UnknownOutcome",
    "Unsupported",
    "__version__",
    "compiled_routes",
    "load_config",
    "route_record",
]
