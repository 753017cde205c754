"""Poll planning for Boring Marketing: which brands' runs to read this cycle. Pure.

One list read (``GET /brands/{brand_id}/runs``) shows every run of a brand, so runs are
grouped by brand (the run's ``ref``, recorded at fire time): a brand is read when at
least one of its live runs is due, and that one read settles all of them. Brands come
out oldest due run first (the oldest are the nearest to their deadline).

A run is due when its check interval has passed since it was last checked (or fired):
the document's recommendation, 10 s for full pipeline runs (``analyze``, and
``discover``, a mini-pipeline of the same length) and 5 s for single-stage runs. A
check may come a little early (``early``): cycles start on the poller's beat and a check
is stamped when its answer arrives, so an exact comparison would skip a cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LONG_PIPELINES", "BrandRead", "LiveRun", "PollSettings", "is_due", "plan_poll"]

LONG_PIPELINES = frozenset({"analyze", "discover"})


class LiveRun(Protocol):
    """What planning needs of a live run (the outbox's ``RunRecord`` fits)."""

    @property
    def run_id(self) -> str: ...
    @property
    def action(self) -> str: ...  # the pipeline endpoint fired
    @property
    def ref(self) -> str | None: ...  # the brand
    @property
    def fired_at(self) -> float: ...
    @property
    def last_checked_at(self) -> float | None: ...


@dataclass(frozen=True)
class PollSettings:
    """How often runs are checked (seed 004's recommended intervals)."""

    pipeline_interval: float = 10.0  # LONG_PIPELINES
    stage_interval: float = 5.0  # every other endpoint
    early: float = 0.1  # the share of an interval a check may come early

    def __post_init__(self) -> None:
        if self.pipeline_interval <= 0 or self.stage_interval <= 0:
            raise ValueError("poll intervals must be positive")
        if not 0 <= self.early < 1:
            raise ValueError("early must be in [0, 1)")

    def interval(self, action: str) -> float:
        return self.pipeline_interval if action in LONG_PIPELINES else self.stage_interval


@dataclass(frozen=True)
class BrandRead:
    """One list read of ``brand_id``'s runs: it shows ``run_ids`` (every live run of the
    brand); ``due`` are those that must be read by id if the list does not show them."""

    brand_id: str
    run_ids: frozenset[str]
    due: tuple[str, ...]
    oldest_due: float


def is_due(run: LiveRun, now: float, settings: PollSettings) -> bool:
    last = run.last_checked_at if run.last_checked_at is not None else run.fired_at
    return now - last >= settings.interval(run.action) * (1 - settings.early)


def plan_poll(
    runs: Iterable[LiveRun], now: float, settings: PollSettings, default_brand: str | None
) -> list[BrandRead]:
    """The brands to read this cycle, oldest due run first.

    A run without a brand of its own is the ``default_brand``'s; with neither it cannot
    be read, and is left to its deadline.
    """
    by_brand: dict[str, list[LiveRun]] = defaultdict(list)
    for run in runs:
        brand = run.ref or default_brand
        if brand is not None:
            by_brand[brand].append(run)
    reads = []
    for brand, group in by_brand.items():
        due = sorted((r for r in group if is_due(r, now, settings)), key=lambda r: r.fired_at)
        if due:
            reads.append(
                BrandRead(
                    brand_id=brand,
                    run_ids=frozenset(r.run_id for r in group),
                    due=tuple(r.run_id for r in due),
                    oldest_due=due[0].fired_at,
                )
            )
    return sorted(reads, key=lambda read: read.oldest_due)
