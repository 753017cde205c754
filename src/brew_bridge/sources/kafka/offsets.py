"""Which Kafka offset may be committed: per partition, the position below which every
record is durable in the outbox (invariant 1). Pure: no I/O, no clock.

A Kafka commit says "everything before this position is done". So the position to
commit is the lowest offset received but not yet durable; when nothing is waiting,
it is one past the highest durable offset. Offsets need not be contiguous (compacted
topics and transaction markers leave gaps); only offsets actually received count.

Ingest stores whole batches, so today every received offset becomes durable together;
the tracker still guards the rule, so that a partially stored batch, a record handed
over twice, or a revoked partition can never move a commit past an event that is not
stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["OffsetTracker", "Partition"]

Partition = tuple[str, int]  # (topic, partition)


class OffsetTracker:
    """Offsets received, offsets durable, positions committed; per partition."""

    def __init__(self) -> None:
        self._waiting: dict[Partition, set[int]] = {}  # received, not yet durable
        self._durable_next: dict[Partition, int] = {}  # one past the highest durable offset
        self._committed: dict[Partition, int] = {}

    def received(self, partition: Partition, offsets: Iterable[int]) -> None:
        """These offsets were handed to ingest and are not durable yet."""
        done = self._durable_next.get(partition, -1)
        waiting = self._waiting.setdefault(partition, set())
        # A record re-read below the durable mark (after a seek) cannot hold a commit back.
        waiting.update(o for o in offsets if o >= done)

    def durable(self, partition: Partition, offsets: Iterable[int]) -> None:
        """These offsets are now in the outbox (or its dead letters), committed."""
        waiting = self._waiting.setdefault(partition, set())
        for offset in offsets:
            waiting.discard(offset)
            if offset + 1 > self._durable_next.get(partition, -1):
                self._durable_next[partition] = offset + 1

    def position(self, partition: Partition) -> int | None:
        """The position it is safe to commit now, or None when nothing is durable yet."""
        done = self._durable_next.get(partition)
        waiting = self._waiting.get(partition)
        if done is None or not waiting:
            return done
        return min(done, min(waiting))

    def to_commit(self) -> dict[Partition, int]:
        """Positions that moved past what was last committed (nothing else to send)."""
        out = {}
        for partition in self._durable_next:
            pos = self.position(partition)
            if pos is not None and pos > self._committed.get(partition, -1):
                out[partition] = pos
        return out

    def committed(self, positions: Mapping[Partition, int]) -> None:
        """The broker accepted these positions."""
        for partition, pos in positions.items():
            if pos > self._committed.get(partition, -1):
                self._committed[partition] = pos

    def committed_position(self, partition: Partition) -> int | None:
        return self._committed.get(partition)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions revoked: another member continues from their committed position."""
        for partition in partitions:
            self._waiting.pop(partition, None)
            self._durable_next.pop(partition, None)
            self._committed.pop(partition, None)

    def partitions(self) -> frozenset[Partition]:
        return frozenset(self._waiting) | frozenset(self._durable_next)
