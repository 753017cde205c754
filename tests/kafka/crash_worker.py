"""A bridge consumer that kills itself with SIGKILL at an exact point of the ingest loop.

    python crash_worker.py CONFIG POINT AFTER_BATCHES

POINT is one of:
  none                    consume to the end and exit 0
  before_outbox_commit    the Nth batch is written inside its transaction; die on COMMIT
  after_outbox_commit     the Nth batch is committed in the outbox; die before the offsets
  after_offset_commit     the Nth batch's offsets are committed; die right after

The point is hit through the source's observer hooks and the outbox's SQL trace, so the
test kills the process where it means to, not "somewhere around".
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from brew_bridge.config import BridgeConfig, compiled_routes, load_config
from brew_bridge.core.intake import IntakeSummary
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.offsets import Partition
from brew_bridge.sources.kafka.source import KafkaObserver, build_kafka_source
from brew_bridge.store import Outbox, StoreResult

POINTS = ("none", "before_outbox_commit", "after_outbox_commit", "after_offset_commit")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(KafkaObserver):
    def __init__(self, point: str, after: int) -> None:
        self.point = point
        self.after = after
        self.batches = 0
        self.armed = False  # the SQL trace kills on the next COMMIT

    def on_batch_received(self, records: Sequence[SourceRecord]) -> None:
        self.batches += 1
        if self.point == "before_outbox_commit" and self.batches == self.after:
            self.armed = True

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        if self.point == "after_outbox_commit" and self.batches == self.after:
            die()

    def on_offsets_committed(self, positions: Mapping[Partition, int]) -> None:
        if self.point == "after_offset_commit" and self.batches == self.after:
            die()

    def trace(self, statement: str) -> None:
        if self.armed and statement == "COMMIT":
            die()


async def drain(config: BridgeConfig, outbox: Outbox, observer: KafkaObserver) -> IntakeSummary:
    """Drain the source to the end of its topics: the bridge's Kafka source, or the one
    ``CRASH_WORKER_SOURCE`` names (``module:class``, built like it, with ``drain_to_end``):
    bench/ingest_kinds/kafka_faststream.py runs these very tests through it."""
    routes = compiled_routes(config)
    named = os.environ.get("CRASH_WORKER_SOURCE")
    if not named:
        return await build_kafka_source(
            config, routes, outbox, Metrics(), observer=observer
        ).drain()
    module, _, name = named.partition(":")
    candidate = getattr(importlib.import_module(module), name)
    summary: IntakeSummary = await candidate(
        config, routes, outbox, Metrics(), observer=observer
    ).drain_to_end()
    return summary


def main(argv: Sequence[str]) -> int:
    config_path, point, after = argv[0], argv[1], int(argv[2])
    if point not in POINTS:
        raise SystemExit(f"POINT must be one of {POINTS}")
    config = load_config(config_path, env={})
    killer = Killer(point, after)
    outbox = Outbox.open(
        config.outbox.path, synchronous=config.outbox.synchronous, trace=killer.trace
    )
    summary = asyncio.run(drain(config, outbox, killer))
    outbox.close()
    print(json.dumps({"records": summary.records, "batches": summary.batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
