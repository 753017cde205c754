"""A bridge that drains its queue sources and kills itself with SIGKILL at an exact point.

    python queue_crash_worker.py CONFIG POINT AFTER_BATCHES

POINT is one of:
  none                    drain the sources and exit 0
  before_outbox_commit    the Nth batch is written inside its transaction; die on COMMIT
  after_outbox_commit     the Nth batch is committed in the outbox; die before its acks
  serve                   consume until SIGTERM (prints "consuming" once every source is)

It prints a JSON summary when it ends without dying.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.core.intake import IntakeObserver, IntakeSummary
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.queue import QueueSource
from brew_bridge.sources.registry import Sources, build_queue_sources
from brew_bridge.store import Outbox, StoreResult

POINTS = ("none", "before_outbox_commit", "after_outbox_commit", "serve")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(IntakeObserver):
    def __init__(self, point: str, after: int) -> None:
        self.point = point
        self.after = after
        self.batches = 0
        self.armed = False  # the SQL trace kills on the next COMMIT
        # Several sources' batches interleave: the Nth one is known by identity.
        self.target: Sequence[SourceRecord] | None = None

    def on_batch_received(self, records: Sequence[SourceRecord]) -> None:
        self.batches += 1
        if self.batches == self.after:
            self.target = records
            self.armed = self.point == "before_outbox_commit"

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        if self.point == "after_outbox_commit" and records is self.target:
            die()

    def trace(self, statement: str) -> None:
        if self.armed and statement == "COMMIT":
            die()


async def drain(config_path: str, point: str, after: int) -> dict[str, int]:
    config = load_config(config_path, env={})
    killer = Killer(point, after)
    outbox = Outbox.open(
        config.outbox.path, synchronous=config.outbox.synchronous, trace=killer.trace
    )
    try:
        sources = build_queue_sources(
            config, compiled_routes(config), outbox, Metrics(), observer=killer
        )
        if point == "serve":
            summary = await serve(sources)
        else:
            summary = await Sources(sources).drain()
    finally:
        outbox.close()
    return {"records": summary.records, "batches": summary.batches}


async def serve(sources: Sequence[QueueSource]) -> IntakeSummary:
    """Consume until SIGTERM; say "consuming" once every source is connected."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(Sources(sources).run(stop))
    while not all(source.connected for source in sources):
        if task.done():
            task.result()  # it failed: say why
        await asyncio.sleep(0.05)
    print("consuming", flush=True)
    await task
    return IntakeSummary.total(source.feed.summary for source in sources)


def main(argv: Sequence[str]) -> int:
    config_path, point, after = argv[0], argv[1], int(argv[2])
    if point not in POINTS:
        raise SystemExit(f"POINT must be one of {POINTS}")
    print(json.dumps(asyncio.run(drain(config_path, point, after))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
