"""How long a trigger's runs take, fire to end, as the poller saw them end. Pure, no I/O.

Brew does not say how long an automation runs, but the runs of one trigger run the same
flow, so the recent ones tell: none of a trigger's runs is read before its shortest recent
run could have ended, and a batch of them is read once its longest could have.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["RunLength", "RunLengths"]

# Recent ends kept per trigger: enough to smooth the fire answer's jitter, few enough
# that a flow that changed is learned again within a few cycles.
_KEPT = 32


@dataclass(frozen=True)
class RunLength:
    """Seconds from our fire to Brew's end, over a trigger's recent runs."""

    shortest: float
    longest: float


class RunLengths(Mapping[str, RunLength]):
    """The recent fire-to-end seconds of each trigger (a ``Mapping`` trigger -> length)."""

    def __init__(self) -> None:
        self._seen: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=_KEPT))

    def saw(self, trigger: str, fired_at: float, ended_at: float) -> None:
        # Our fire time is stamped after Brew started the run (and a replayed fire's run
        # began earlier still): a negative length is a zero one.
        self._seen[trigger].append(max(0.0, ended_at - fired_at))

    def __getitem__(self, trigger: str) -> RunLength:
        seen = self._seen.get(trigger)
        if not seen:
            raise KeyError(trigger)
        return RunLength(min(seen), max(seen))

    def __iter__(self) -> Iterator[str]:
        return iter(self._seen)

    def __len__(self) -> int:
        return len(self._seen)
