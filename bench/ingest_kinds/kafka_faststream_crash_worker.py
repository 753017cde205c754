"""tests/kafka/crash_worker.py with the FastStream Kafka path of kafka_faststream.py in
place of the direct source: the same kill points, hit through the same hooks.

    python kafka_faststream_crash_worker.py CONFIG POINT AFTER_BATCHES

To run the Kafka crash tests against it, copy tests/kafka and put this file in the
copy as crash_worker.py (the test starts the worker by that name); see the header of
bench/ingest_kinds/kafka_faststream.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# This file runs from a copy of tests/kafka: the plugin is found by its path.
sys.path.insert(0, str(Path(os.environ["BENCH_DIR"])))

from brew_bridge.config import compiled_routes, load_config
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sources.kafka.offsets import Partition
from brew_bridge.sources.kafka.source import KafkaObserver
from brew_bridge.store import Outbox, StoreResult
from ingest_kinds.kafka_faststream import FastStreamKafkaSource

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


def main(argv: Sequence[str]) -> int:
    config_path, point, after = argv[0], argv[1], int(argv[2])
    if point not in POINTS:
        raise SystemExit(f"POINT must be one of {POINTS}")
    config = load_config(config_path, env={})
    killer = Killer(point, after)
    outbox = Outbox.open(
        config.outbox.path, synchronous=config.outbox.synchronous, trace=killer.trace
    )
    source = FastStreamKafkaSource(
        config, compiled_routes(config), outbox, Metrics(), observer=killer
    )
    summary = asyncio.run(source.drain_to_end())
    outbox.close()
    print(json.dumps({"records": summary.records, "batches": summary.batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
