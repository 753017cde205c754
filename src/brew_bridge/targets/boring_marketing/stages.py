"""The stage of every live run, exported as gauges: which stages the work sits in.

The poller shows the target only the runs it reads; the target remembers the stage each
live run was last seen in, forgets a run once it ends (or leaves the live set), and
after each poll sets ``brew_bridge_run_stages{target, stage}`` to the count per stage —
and, with ``stage_brand_label``, ``brew_bridge_run_stages_by_brand{target, stage,
brand}`` too (off by default: brand ids make many series). A live run without a stage
(queued, or an endpoint that emits none) counts as stage ``none``. A stage no run is in
any more reads 0; a (stage, brand) pair no run is in any more is removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable

from prometheus_client import Gauge

from brew_bridge.events import is_terminal
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.boring_marketing.wire import BmRun

__all__ = ["NO_STAGE", "StageGauges", "stage_counts"]

NO_STAGE = "none"


def stage_counts(seen: Iterable[tuple[str, str]], *, by_brand: bool) -> Counter[tuple[str, ...]]:
    """Live runs per stage (``by_brand``: per (stage, brand)), from (stage, brand) pairs."""
    return Counter((stage, brand) if by_brand else (stage,) for stage, brand in seen)


class StageGauges:
    """What each live run was last seen doing, and the gauges that count it."""

    def __init__(self, metrics: Metrics | None, target: str, *, brand_label: bool) -> None:
        self._metrics = metrics
        self._target = target
        self._brand_label = brand_label
        self._live: dict[str, tuple[str, str]] = {}  # run id -> (stage, brand)
        self._published: dict[bool, set[tuple[str, ...]]] = {False: set(), True: set()}

    def keep(self, live: Collection[str]) -> None:
        """Forget the runs that are no longer live (ended, or finished elsewhere)."""
        for run_id in [i for i in self._live if i not in live]:
            del self._live[run_id]

    def saw(self, run: BmRun, brand_id: str) -> None:
        if is_terminal(run.status):
            self.forget(run.run_id)
        else:
            self._live[run.run_id] = (run.stage or NO_STAGE, brand_id)

    def forget(self, run_id: str) -> None:
        self._live.pop(run_id, None)

    def publish(self) -> None:
        if self._metrics is None:
            return
        self._set(self._metrics.run_stages, by_brand=False)
        if self._brand_label:
            self._set(self._metrics.run_stages_by_brand, by_brand=True)

    def _set(self, gauge: Gauge, *, by_brand: bool) -> None:
        counts = stage_counts(self._live.values(), by_brand=by_brand)
        for labels, count in counts.items():
            gauge.labels(self._target, *labels).set(count)
        for labels in self._published[by_brand] - counts.keys():
            if by_brand:
                gauge.remove(self._target, *labels)
            else:
                gauge.labels(self._target, *labels).set(0)
        self._published[by_brand] = set(counts)
