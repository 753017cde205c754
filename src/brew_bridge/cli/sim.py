"""``brew-bridge sim [--target brew|pinkfish|boring-marketing]``: serve a simulator.

Brew (default, port 8787): the API is at ``http://HOST:PORT/api/v1/…`` (a client's base
URL is ``http://HOST:PORT/api``, as production's is ``https://brew.new/api``). Pinkfish
(8788) and Boring Marketing (8789) serve their APIs at the root (``/ext/…``,
``/brands/…``). Every simulator's admin routes are at ``/_sim/…`` and have no auth, so
the default host is loopback. ``--port 0`` picks a free port; the first line on stdout
always says the URL actually served (tools such as ``bench/sim.py`` read it). Without
``--seed`` a small demo seed is loaded.

``python -m brew_bridge.cli.sim`` runs this command alone, without loading the others.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

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


class _Served(NamedTuple):
    app: Any  # the ASGI application
    what: str  # "Brew API 9.3 at {url}/api": what the first line says is served


_PORTS = {"brew": 8787, "pinkfish": 8788, "boring-marketing": 8789}


def _brew(seed_file: str | None, api_shape: str | None) -> _Served:
    from brew_bridge.sim.brew.app import create_app
    from brew_bridge.sim.brew.seed import load_seed, parse_seed
    from brew_bridge.sim.brew.state import SimState

    seed = load_seed(seed_file) if seed_file else parse_seed(DEMO_SEED)
    state = SimState(seed, api_shape_override=api_shape)
    return _Served(create_app(state), f"Brew API {state.api_shape} at {{url}}/api")


def _pinkfish(seed_file: str | None, api_shape: str | None) -> _Served:
    from brew_bridge.sim.pinkfish import PinkfishState, create_app, load_seed, parse_seed
    from brew_bridge.sim.pinkfish.demo import DEMO_SEED as PINKFISH_DEMO

    seed = load_seed(seed_file) if seed_file else parse_seed(PINKFISH_DEMO)
    return _Served(create_app(PinkfishState(seed)), "Pinkfish API at {url}")


def _boring_marketing(seed_file: str | None, api_shape: str | None) -> _Served:
    from brew_bridge.sim.boring_marketing import BoringState, create_app, load_seed, parse_seed
    from brew_bridge.sim.boring_marketing.demo import DEMO_SEED as BM_DEMO

    seed = load_seed(seed_file) if seed_file else parse_seed(BM_DEMO)
    return _Served(create_app(BoringState(seed)), "Boring Marketing API at {url}")


_SIMULATORS = {"brew": _brew, "pinkfish": _pinkfish, "boring-marketing": _boring_marketing}


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve a target's simulator: Brew v1 (default), Pinkfish or Boring Marketing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument(
        "--target", choices=tuple(_SIMULATORS), default="brew", help="what to simulate"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port (0: a free one; default 8787/8788/8789)"
    )
    parser.add_argument(
        "--seed",
        metavar="FILE",
        help="YAML seed file (docs/simulator.md, docs/targets/*.md)",
    )
    parser.add_argument(
        "--api-shape",
        choices=("9.3", "10"),
        default=None,
        help="Brew only: the API generation to serve (default: the seed's apiShape, else 9.3)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from brew_bridge.errors import ConfigError
    from brew_bridge.testing.simulator import bind_socket, serve_config

    if args.api_shape is not None and args.target != "brew":
        print("brew-bridge sim: --api-shape applies to --target brew only", file=sys.stderr)
        return 2
    try:
        served = _SIMULATORS[args.target](args.seed, args.api_shape)
    except ConfigError as exc:
        print(f"brew-bridge sim: bad seed file:\n{exc}", file=sys.stderr)
        return 2
    wanted = _PORTS[args.target] if args.port is None else args.port
    try:
        sock = bind_socket(args.host, wanted)
    except OSError as exc:
        print(f"brew-bridge sim: cannot listen on {args.host}:{wanted}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    print(
        f"brew-bridge sim: {served.what.format(url=url)} (admin: {url}/_sim/)",
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
    uvicorn.Server(serve_config(served.app, log_level=args.log_level)).run(sockets=[sock])
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
