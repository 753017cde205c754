"""What every subcommand module gets from ``brew-bridge``'s parser: the subparsers to add to."""

from __future__ import annotations

import argparse
from typing import TypeAlias

__all__ = ["Subparsers"]

# argparse names the type of ``add_subparsers()``'s result only privately.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
