"""``python -m brew_bridge.sim.boring_marketing``: serve the Boring Marketing simulator.

The API is at ``http://HOST:PORT/brands/…`` (a client's base URL is ``http://HOST:PORT``,
as production's is ``https://api.boringmarketing.com``); the admin routes are at
``/_sim/…`` and have no auth, so the default host is loopback. ``--port 0`` picks a free
port; the first line on stdout always says the URL actually served. Without ``--seed``
a small demo seed is loaded (a brand, a key, one pipeline per outcome).

The simulators may not import the bridge's helpers (see the import contracts): uvicorn
binds the port itself, with the Pinkfish simulator's banner once it listens.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from brew_bridge.errors import ConfigError
from brew_bridge.sim.boring_marketing.app import create_app
from brew_bridge.sim.boring_marketing.seed import load_seed, parse_seed
from brew_bridge.sim.boring_marketing.state import BoringState
from brew_bridge.sim.pinkfish.__main__ import _Server

__all__ = ["DEMO_BRAND", "DEMO_KEY", "DEMO_SEED", "main"]

DEMO_BRAND = "4a6e0c1e-8d2f-4b7a-9c3e-5f1d2a7b8c90"
DEMO_KEY = "bm_54249af28748e0e24b4d2782122e2de9"

# What the simulator serves without --seed: minutes compressed into seconds.
DEMO_SEED: dict[str, Any] = {
    "brands": {DEMO_BRAND: {"name": "Acme", "domain": "acme.example"}},
    "keys": {DEMO_KEY: {"brands": [DEMO_BRAND]}},
    "pipelines": {
        "analyze": {"stageMs": 1500, "queuedMs": 500},
        "discover": {"stageMs": 4000, "outcome": "failed"},
        "score": {"stageMs": 2000, "outcomes": ["stuck", "done"]},
        "brief": {"stageMs": 1000},
    },
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m brew_bridge.sim.boring_marketing", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8789, help="port (0: a free one)")
    parser.add_argument(
        "--seed", metavar="FILE", help="YAML seed file (docs/targets/boring-marketing.md)"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    try:
        seed = load_seed(args.seed) if args.seed else parse_seed(DEMO_SEED)
    except ConfigError as exc:
        print(f"brew-bridge sim: bad seed file:\n{exc}", file=sys.stderr)
        return 2
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(
            "brew-bridge sim: warning: the /_sim/ admin routes have no auth and are reachable "
            f"on {args.host}",
            file=sys.stderr,
        )
    config = uvicorn.Config(
        create_app(BoringState(seed)),
        host=args.host,
        port=args.port,
        loop="asyncio",
        lifespan="off",
        ws="none",
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = _Server(config, "brew-bridge sim: Boring Marketing API at {url} (admin: {url}/_sim/)")
    server.run()  # a port it cannot bind: uvicorn says why and exits 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
