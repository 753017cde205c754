"""``brew-bridge run --config FILE [--once] [--no-consume]``: the bridge itself.

Runs the Kafka source, the dispatcher, the poller and the ``/metrics`` / ``/healthz`` /
``/readyz`` server in one process. SIGTERM or SIGINT stops it gracefully, within
``shutdown.grace_seconds``: offsets of what is durable are committed, fires not sent yet
(waiting for the fire budget) go back to pending at once, requests already sent are
awaited until the grace period ends, the outbox closes.

``--once`` stops once the consumer has caught up, every queued delivery is fired (or
dead) and every run has ended, then prints a JSON summary: for tests and batch jobs.
``--no-consume`` starts no Kafka consumer and only delivers what the outbox holds.

Exit codes: 0 done, 1 a part failed (Kafka unreachable, outbox unusable), 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brew_bridge.errors import BridgeError, ConfigError

if TYPE_CHECKING:
    from brew_bridge.worker import Worker

from brew_bridge.cli.subcommand import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the bridge: consume, fire, poll, serve /metrics",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--config", required=True, type=Path, help="the YAML config file")
    parser.add_argument(
        "--once",
        action="store_true",
        help="stop when caught up and every run has ended; print a JSON summary",
    )
    parser.add_argument(
        "--no-consume",
        action="store_true",
        help="start no Kafka consumer: only deliver what the outbox already holds",
    )
    parser.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from brew_bridge.config import load_config
    from brew_bridge.observe.logs import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"brew-bridge run: the config cannot start:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)

    from brew_bridge.worker import Worker

    try:
        worker = Worker(config, consume=not args.no_consume)
        summary = asyncio.run(_serve(worker, once=args.once))
    except ConfigError as exc:
        print(f"brew-bridge run: the config cannot start:\n{exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"brew-bridge run: {exc}", file=sys.stderr)
        return 1
    if args.once:
        print(json.dumps(summary, indent=2))
    return 0


async def _serve(worker: Worker, *, once: bool) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    summary = await worker.run(stop, once=once)
    result: dict[str, Any] = summary.to_json()
    return result
