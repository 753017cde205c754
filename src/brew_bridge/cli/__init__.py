"""The ``brew-bridge`` command line.

Each subcommand lives in its own module here and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` to a
callable taking the parsed ``argparse.Namespace`` and returning an exit code.
Modules are imported only when listed, so a command's heavy imports cost the others
nothing.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Order is the order ``--help`` shows them in.
_COMMANDS = ("run", "dev", "check", "map", "sim", "dlq", "outbox")


def build_parser() -> argparse.ArgumentParser:
    from brew_bridge import __version__

    parser = argparse.ArgumentParser(
        prog="brew-bridge",
        description="Turn business events into Brew automation runs; watch every run to its end.",
    )
    parser.add_argument("--version", action="version", version=f"brew-bridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        module = importlib.import_module(f"brew_bridge.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # `brew-bridge dlq list | head` should end quietly, not with a BrokenPipeError.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
