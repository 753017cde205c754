"""``brew-bridge drain --config FILE [--timeout S]``: finish what an outbox holds, take nothing new.

For a member leaving for good: a StatefulSet scaled down leaves the removed member's
volume with deliveries still to fire and runs still to follow. A Job (or a ``preStop``
hook, once the member has stopped consuming) runs ``drain`` on that volume: no Kafka
consumer and no webhook endpoint start, so nothing new arrives; every pending delivery
is fired (same Idempotency-Key: one that Brew already accepted answers with its runs)
and every live run is followed to its end. The group has already taken over the
member's partitions from the offsets it committed, which cover only what this outbox
holds, so nothing is stranded and nothing is read twice.

Exit codes: 0 the outbox is empty of work; 3 the timeout came first (what is left is
printed, and a later ``drain`` finishes it); 1 a part failed; 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brew_bridge.cli.subcommand import Subparsers
from brew_bridge.errors import BridgeError, ConfigError

if TYPE_CHECKING:
    from brew_bridge.config import BridgeConfig

__all__ = ["register"]

EXIT_DRAINED = 0
EXIT_LEFT_OVER = 3


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "drain",
        help="fire what an outbox holds and follow its runs to their end; consume nothing",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--config", required=True, type=Path, help="the YAML config file")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up after this long and print what is left (default: until done)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="where /metrics listens meanwhile (default: a free port, so it never "
        "collides with a bridge running beside it)",
    )
    parser.set_defaults(func=_cmd_drain)


def draining(config: BridgeConfig, port: int = 0) -> BridgeConfig:
    """``config`` as ``drain`` runs it: no webhook endpoint, its own metrics port."""
    return config.model_copy(
        update={
            "webhooks": config.webhooks.model_copy(update={"sources": {}}),
            "server": config.server.model_copy(update={"port": port}),
        }
    )


def _cmd_drain(args: argparse.Namespace) -> int:
    from brew_bridge.config import load_config
    from brew_bridge.observe.logs import configure_logging

    try:
        config = draining(load_config(args.config), args.port)
    except ConfigError as exc:
        print(f"brew-bridge drain: the config cannot start:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)
    try:
        report = asyncio.run(drain(config, give_up_after=args.timeout))
    except ConfigError as exc:
        print(f"brew-bridge drain: the config cannot start:\n{exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"brew-bridge drain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return EXIT_DRAINED if report["drained"] else EXIT_LEFT_OVER


async def drain(config: BridgeConfig, *, give_up_after: float | None = None) -> dict[str, Any]:
    """Deliver everything ``config``'s outbox holds; stop after ``give_up_after`` s or SIGTERM.

    Returns the summary and what is left (``drained``: nothing is).
    """
    from brew_bridge.store import Outbox
    from brew_bridge.worker import Worker

    worker = Worker(config, consume=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    timer = loop.call_later(give_up_after, stop.set) if give_up_after is not None else None
    try:
        summary = await worker.run(stop, once=True)
    finally:
        if timer is not None:
            timer.cancel()
    outbox = Outbox.open(config.outbox.path, synchronous=config.outbox.synchronous)
    try:
        stats = outbox.stats(time.time())
    finally:
        outbox.close()
    left = {"deliveries": stats.backlog, "live_runs": stats.live_runs}
    return {
        "drained": stats.backlog == 0 and stats.live_runs == 0,
        "left": left,
        "summary": summary.to_json(),
    }
