"""``brew-bridge sim``: serve the Brew v1 simulator over HTTP.

The API is at ``http://HOST:PORT/api/v1/…`` (a client's base URL is
``http://HOST:PORT/api``, as production's is ``https://brew.new/api``); the admin routes
are at ``/_sim/…`` and have no auth, so the default host is loopback. ``--port 0`` picks a
free port; the first line on stdout always says the URL actually served (tools such as
``bench/sim.py`` read it). Without ``--seed`` a small demo seed is loaded.

``python -m brew_bridge.cli.sim`` runs this command alone, without loading the others.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

from brew_bridge.cli.subcommand import Subparsers

__all__ = ["DEMO_SEED", "main", "register", "run"]

_EMAIL_FIRST_NAME = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
    ],
}

# What `brew-bridge sim` serves without --seed: one trigger of each kind of outcome.
DEMO_SEED: dict[str, Any] = {
    "triggers": {
        "tri_signup": {
            "title": "User signed up",
            "payloadSchema": _EMAIL_FIRST_NAME,
            "automations": [
                {"automationId": "auto_welcome", "name": "Welcome email", "durationMs": 2000}
            ],
        },
        "tri_payment_failed": {
            "title": "Payment failed",
            "payloadSchema": _EMAIL_FIRST_NAME,
            "automations": [
                {
                    "automationId": "auto_dunning",
                    "name": "Dunning email",
                    "durationMs": 3000,
                    "outcome": "failed",
                }
            ],
        },
        "tri_draft_only": {
            "title": "Nothing published yet",
            "payloadSchema": _EMAIL_FIRST_NAME,
            "automations": [{"automationId": "auto_draft", "published": False}],
        },
    }
}


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve the Brew v1 simulator (for tests, demos and benchmarks)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8787, help="port (0: a free one)")
    parser.add_argument("--seed", metavar="FILE", help="YAML seed file (see docs/simulator.md)")
    parser.add_argument(
        "--api-shape",
        choices=("9.3", "10"),
        default=None,
        help="API generation to serve (default: the seed's apiShape, else 9.3)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from brew_bridge.errors import ConfigError
    from brew_bridge.sim.brew.app import create_app
    from brew_bridge.sim.brew.seed import load_seed, parse_seed
    from brew_bridge.sim.brew.state import SimState
    from brew_bridge.testing.simulator import bind_socket, serve_config

    try:
        seed = load_seed(args.seed) if args.seed else parse_seed(DEMO_SEED)
    except ConfigError as exc:
        print(f"brew-bridge sim: bad seed file:\n{exc}", file=sys.stderr)
        return 2
    state = SimState(seed, api_shape_override=args.api_shape)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"brew-bridge sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"brew-bridge sim: Brew API {state.api_shape} at http://{host}:{port}/api "
        f"(admin: http://{host}:{port}/_sim/)",
        flush=True,
    )
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
    uvicorn.Server(serve_config(create_app(state), log_level=args.log_level)).run(sockets=[sock])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """This command on its own (``python -m brew_bridge.cli.sim``)."""
    parser = argparse.ArgumentParser(prog="brew-bridge")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
