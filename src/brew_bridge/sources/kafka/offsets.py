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

:class:`CatchUp` is the rule of ``run --once``: done when the group's commits reach the
end of every partition of its topics (whichever member holds them), and how long the
group has gone without getting closer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Behind", "CatchUp", "OffsetTracker", "Partition"]

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


@dataclass(frozen=True, order=True)
class Behind:
    """A partition whose group commit is short of the end ``--once`` must reach."""

    partition: Partition
    committed: int | None  # None: the group never committed it
    end: int


class CatchUp:
    """``run --once``: the end each partition must reach, and the wait for the others.

    The end of a partition is set once (records produced later are for the next run).
    Partitions this member holds are done when its position reaches the end (its
    commit follows when the batch is stored); the others when the group's committed
    offset does. While only others are left, :meth:`waited` counts the seconds without
    progress: the clock starts again whenever this member's assignment changes or a
    commit moves. Pure: the caller reads the broker and the clock.
    """

    def __init__(self) -> None:
        self._ends: dict[Partition, int] = {}
        self._seen: tuple[frozenset[Partition], tuple[Behind, ...] | None] | None = None
        self._since = 0.0

    def missing_ends(self, partitions: Iterable[Partition]) -> list[Partition]:
        """The partitions whose end is not read yet."""
        return sorted(p for p in set(partitions) if p not in self._ends)

    def set_ends(self, ends: Mapping[Partition, int]) -> None:
        for partition, end in ends.items():
            self._ends.setdefault(partition, end)

    def end(self, partition: Partition) -> int:
        return self._ends[partition]

    def read_to_end(self, positions: Mapping[Partition, int]) -> bool:
        """This member's positions are at (or past) the end of its partitions."""
        return all(pos >= self._ends[p] for p, pos in positions.items())

    def to_ask(self, others: Collection[Partition]) -> list[Partition]:
        """Of the partitions held elsewhere, those whose commit must be asked for (an
        empty partition is at its end whoever holds it)."""
        return sorted(p for p in others if self._ends[p] > 0)

    def behind(self, committed: Mapping[Partition, int | None]) -> list[Behind]:
        """The partitions whose group commit is short of their end."""
        return sorted(
            Behind(p, c, self._ends[p])
            for p, c in committed.items()
            if (0 if c is None else c) < self._ends[p]
        )

    def busy(self) -> None:
        """This member has records to read: it is not waiting on anyone."""
        self._seen = None

    def waited(
        self, now: float, owned: Collection[Partition], behind: Sequence[Behind] | None
    ) -> float:
        """Seconds without progress while only ``behind`` (held elsewhere) is left;
        ``behind`` None: the group's commits could not be read, which is no progress."""
        if behind is None:
            if self._seen is None:
                self._seen = (frozenset(owned), None)
                self._since = now
            return now - self._since
        seen = (frozenset(owned), tuple(sorted(behind)))
        if seen != self._seen:
            self._seen = seen
            self._since = now
        return now - self._since
