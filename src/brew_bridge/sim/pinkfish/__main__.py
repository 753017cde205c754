"""``python -m brew_bridge.sim.pinkfish``: serve the Pinkfish simulator over HTTP.

The API is at ``http://HOST:PORT/ext/…`` (a client's base URL is ``http://HOST:PORT``,
as production's is ``https://triggers.app.pinkfish.ai``); the admin routes are at
``/_sim/…`` and have no auth, so the default host is loopback. ``--port 0`` picks a free
port; the first line on stdout always says the URL actually served. Without ``--seed``
a small demo seed is loaded (one trigger per outcome).

The simulators may not import the bridge's helpers (see the import contracts), so the
server is started here with uvicorn's own binding, with the Brew simulator's settings.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from brew_bridge.errors import ConfigError
from brew_bridge.sim.pinkfish.app import create_app
from brew_bridge.sim.pinkfish.seed import load_seed, parse_seed
from brew_bridge.sim.pinkfish.state import PinkfishState

__all__ = ["DEMO_SEED", "main"]

# What the simulator serves without --seed: one trigger of each outcome.
DEMO_SEED: dict[str, Any] = {
    "triggers": {
        "trg_hello": {
            "automationId": "d831ue4rccbc73knbi80",
            "automationName": "Hello World",
            "automationVersion": 3,
            "durationMs": 2500,
            "designatedOutput": {"fileName": "output.txt", "size": 13},
        },
        "trg_research": {
            "automationName": "Research brief",
            "steps": ["Search", "Read", "Summarize"],
            "durationMs": 4000,
            "outcome": "FAILED",
        },
        "trg_slow": {"automationName": "Slow crawl", "durationMs": 6000, "outcome": "TIMEOUT"},
    }
}


class _Server(uvicorn.Server):
    """uvicorn, saying where it listens once it does (the port may have been 0)."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                host = f"[{host}]" if ":" in host else host
                print(self._banner.format(url=f"http://{host}:{port}"), flush=True)
                return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brew_bridge.sim.pinkfish", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8788, help="port (0: a free one)")
    parser.add_argument("--seed", metavar="FILE", help="YAML seed file (docs/targets/pinkfish.md)")
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
        create_app(PinkfishState(seed)),
        host=args.host,
        port=args.port,
        loop="asyncio",
        lifespan="off",
        ws="none",
        log_level=args.log_level,
        access_log=False,  # a polling URL holds the API key: never log paths
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = _Server(config, "brew-bridge sim: Pinkfish API at {url} (admin: {url}/_sim/)")
    server.run()  # a port it cannot bind: uvicorn says why and exits 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
