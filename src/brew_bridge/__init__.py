"""brew-bridge: business events in, Brew automation runs out, every run watched to its end.

The public API is re-exported here; everything else is reachable by module
(``brew_bridge.outbox``, ``brew_bridge.sim``, ...), but only these names are promised.
"""

# Set before the imports below: client.py reads it for its User-Agent.
__version__ = "0.1.0"

from brew_bridge.client import BrewClient, FireResult, RunInfo, RunPage
from brew_bridge.config import BridgeConfig, load_config
from brew_bridge.errors import (
    BrewApiError,
    BrewAuthError,
    BrewBridgeError,
    BrewError,
    BrewRateLimited,
    BrewTransportError,
    BrewUnknownOutcome,
    ConfigError,
    ConfigProblem,
    OutboxError,
    PublishError,
    SourceError,
)
from brew_bridge.events import (
    NewDeadLetter,
    NewDelivery,
    Reason,
    Routed,
    SourceRecord,
)
from brew_bridge.metrics import Metrics
from brew_bridge.outbox import Outbox
from brew_bridge.routing import compile_routes, route_record

__all__ = [
    "BrewApiError",
    "BrewAuthError",
    "BrewBridgeError",
    "BrewClient",
    "BrewError",
    "BrewRateLimited",
    "BrewTransportError",
    "BrewUnknownOutcome",
    "BridgeConfig",
    "ConfigError",
    "ConfigProblem",
    "FireResult",
    "Metrics",
    "NewDeadLetter",
    "NewDelivery",
    "Outbox",
    "OutboxError",
    "PublishError",
    "Reason",
    "Routed",
    "RunInfo",
    "RunPage",
    "SourceError",
    "SourceRecord",
    "__version__",
    "compile_routes",
    "load_config",
    "route_record",
]
