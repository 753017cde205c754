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
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Order is the order ``--help`` shows them in.
_COMMANDS = ("run", "drain", "dev", "check", "map", "sim", "dlq", "outbox", "asyncapi")


def build_parser() -> argparse.ArgumentParser:
    from brew_bridge.version import __version__

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


# What a shell reports for a writer whose reader went away (128 + SIGPIPE).
_EXIT_READER_GONE = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGPIPE stays ignored, as Python sets it: restoring the default would let a Brew
    # or Kafka peer that closes its socket kill the worker mid-batch without a word.
    # A reader that leaves early (`brew-bridge dlq list | head`) ends us quietly here.
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_READER_GONE
    return code


if __name__ == "__main__":
    sys.exit(main())
