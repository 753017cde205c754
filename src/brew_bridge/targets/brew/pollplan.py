"""Poll planning: which live runs to read next, and how. Pure, no I/O.

Reads are the scarce resource (Brew allows about 100 run reads a minute per key), so
the poller asks this module what to read and in which order:

* A **list sweep** (``GET /v1/automations/runs?triggerEventId=…&from=…&limit=100``,
  newest first, following cursors) reports up to 100 runs per read. It covers the
  newest live runs of one trigger and stops as soon as every one of them has been
  seen, so its cost is the number of pages down to its oldest run. When several
  triggers have live runs, one sweep without ``triggerEventId`` covers them all for
  the price of one, unless the brand's other traffic crowds its pages (priced from
  how full the last unfiltered pages were).
* A **detail read** (one run by id, with its node logs) costs one read per run. It is
  for runs a sweep would reach only through many pages of other runs (one old run
  behind a busy trigger: no sweep plans more than ``max_sweep_pages``), for triggers
  with a single live run, and for stragglers: runs that complete sweeps failed to show
  (clock skew, a run the list filter hides).

A run is due for a check once it can have ended and its back-off has elapsed. It can
have ended once its trigger's shortest recent run (``RunLength``) has passed since its
fire; unknown, one ``interval``. The back-off after a check is ``interval``, growing with
the run's age up to ``max_interval``, so a run that waits for days costs few reads.

A read resolves every run that ended before it, so the plan **holds** reads while runs
keep becoming due close together (a burst of fires ends over a few seconds): the read
waits until the batch's longest run can have ended, but never longer than ``hold``
after the batch's first run became due, and no longer once a page's worth is due.
Holding, the plan names the moment to read (``hold_until``) so the poller wakes then.

Runs past their deadline never get here (the poller expires them). Reads come out
oldest run first: the oldest runs are the nearest to their deadline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from brew_bridge.targets.brew.runlengths import RunLength

__all__ = [
    "ALL_TRIGGERS",
    "LIST_PAGE_SIZE",
    "DetailRead",
    "ListSweep",
    "LiveRun",
    "PollPlan",
    "PollSettings",
    "check_gap",
    "due_window",
    "plan_poll",
    "read_time",
]

LIST_PAGE_SIZE = 100
# The key of ``rows_per_second`` for the unfiltered list (every trigger of the brand).
ALL_TRIGGERS = None


class LiveRun(Protocol):
    """What planning needs to know about a live run (the outbox's ``RunRecord`` fits)."""

    @property
    def run_id(self) -> str: ...
    @property
    def action(self) -> str: ...  # the trigger it was fired at
    @property
    def fired_at(self) -> float: ...
    @property
    def last_checked_at(self) -> float | None: ...


@dataclass(frozen=True)
class PollSettings:
    """Knobs of the plan. ``interval`` comes from ``PollerConfig``."""

    interval: float
    # A run aged A is checked every A * backoff_ratio seconds, within [interval, max_interval]:
    # every minute at 10 minutes old, every half hour from 5 hours on, so a run that
    # waits for days costs a few reads an hour, not sixty.
    backoff_ratio: float = 0.1
    max_interval: float = 1800.0
    # A sweep's window opens this long before its oldest run's fire: the fire time is
    # ours, the run's start time is Brew's, and a replayed fire's run began earlier.
    from_slack: float = 60.0
    # Fewer runs than this in a sweep: read them one by one instead (exact, carries logs).
    list_min_runs: int = 2
    # A sweep never plans (or reads) more pages than this: a run further back behind
    # other traffic is read by id instead, so one busy trigger cannot eat every cycle.
    max_sweep_pages: int = 10
    # Holding a read for a batch (in intervals): runs that become due at most ``lull``
    # apart join it; its read waits at most ``hold`` after its first run became due.
    # Two intervals let one read take a whole burst of 1 to 3 s runs at a 2 s interval,
    # even when the burst's 60 fires spread over a second (bench/deliver.py, 2 cores).
    lull_intervals: float = 0.5
    hold_intervals: float = 2.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.lull_intervals < 0 or self.hold_intervals < 0:
            raise ValueError("lull_intervals and hold_intervals must be >= 0")
        if self.list_min_runs < 2:
            raise ValueError("list_min_runs must be at least 2: one run is one detail read")
        if self.max_sweep_pages < 1:
            raise ValueError("max_sweep_pages must be at least 1")


@dataclass(frozen=True)
class ListSweep:
    """Page through runs, newest first, until every run in ``run_ids`` is seen."""

    trigger_event_id: str | None  # None: every trigger's runs (an unfiltered list)
    from_time: float  # epoch seconds: the list's ``from``
    run_ids: frozenset[str]
    oldest_fired_at: float
    estimated_pages: int


@dataclass(frozen=True)
class DetailRead:
    """Read one run by id."""

    run_id: str
    fired_at: float


@dataclass(frozen=True)
class PollPlan:
    reads: tuple[ListSweep | DetailRead, ...]  # oldest run first
    # Holding: no reads now, the next read is due then (epoch seconds). None: read now,
    # or nothing is live.
    hold_until: float | None = None

    @property
    def estimated_reads(self) -> int:
        return sum(r.estimated_pages if isinstance(r, ListSweep) else 1 for r in self.reads)


def check_gap(age: float, settings: PollSettings) -> float:
    """Seconds between two checks of a run that is ``age`` seconds old."""
    return min(max(age * settings.backoff_ratio, settings.interval), settings.max_interval)


def due_window(
    run: LiveRun, settings: PollSettings, length: RunLength | None = None
) -> tuple[float, float]:
    """When the run is first due for a check, and when it has most likely ended (its
    trigger's longest recent run; without lengths, the same moment). Epoch seconds."""
    if run.last_checked_at is None:
        due = run.fired_at + (length.shortest if length is not None else settings.interval)
    else:
        gap = check_gap(run.last_checked_at - run.fired_at, settings)
        due = run.last_checked_at + gap
        if length is not None:
            due = max(due, run.fired_at + length.shortest)
    ended = max(due, run.fired_at + length.longest) if length is not None else due
    return due, ended


def read_time(windows: Iterable[tuple[float, float]], settings: PollSettings) -> float | None:
    """When to read next, given each live run's :func:`due_window`: the batch starting
    at the first due run takes in every run due at most ``lull`` after the one before
    (up to a page of them), and is read when its last has most likely ended, at most
    ``hold`` after its first became due. None: nothing is live."""
    ordered = sorted(windows)
    if not ordered:
        return None
    first, read_at = ordered[0]
    last_due = first
    limit = first + settings.hold_intervals * settings.interval
    lull = settings.lull_intervals * settings.interval
    for due, ended in ordered[1:LIST_PAGE_SIZE]:
        if due - last_due > lull or due > limit:
            break
        last_due, read_at = due, max(read_at, ended)
    return min(read_at, limit)


def plan_poll(
    runs: Iterable[LiveRun],
    now: float,
    settings: PollSettings,
    *,
    stragglers: Collection[str] = (),
    rows_per_second: Mapping[str | None, float] | None = None,
    lengths: Mapping[str, RunLength] | None = None,
) -> PollPlan:
    """Plan one polling cycle over ``runs`` (every live run not past its deadline).

    ``stragglers`` are run ids that complete sweeps did not show: they get detail reads.
    ``rows_per_second`` is, per trigger (:data:`ALL_TRIGGERS` for the unfiltered list),
    how densely its list pages were filled last time (every run there, not just ours);
    it prices a sweep that reaches far back. Without it, a sweep is priced as if only
    our runs were there. ``lengths``: each trigger's recent run lengths (unknown: every
    run is due one ``interval`` after its fire).
    """
    rates = rows_per_second or {}
    known = lengths or {}
    live = list(runs)
    windows = {r.run_id: due_window(r, settings, known.get(r.action)) for r in live}
    read_at = read_time(windows.values(), settings)
    if read_at is None or read_at > now:
        return PollPlan(reads=(), hold_until=read_at)
    due = {i for i, (at, _) in windows.items() if at <= now}
    by_trigger: dict[str, list[LiveRun]] = defaultdict(list)
    details: list[DetailRead] = []
    for run in live:
        if run.run_id in stragglers:
            if run.run_id in due:
                details.append(DetailRead(run.run_id, run.fired_at))
        else:
            by_trigger[run.action].append(run)

    # Per trigger: each due trigger's newest runs in one sweep (filtered by trigger).
    sweeps: list[ListSweep] = []
    split_details: list[LiveRun] = []
    cost = 0
    for trigger, group in by_trigger.items():
        if not any(r.run_id in due for r in group):
            continue
        sweep, rest = _split_group(trigger, group, now, settings, rates.get(trigger), due)
        if sweep is not None:
            sweeps.append(sweep)
            cost += sweep.estimated_pages
        split_details.extend(rest)
        cost += len(rest)
    # Across triggers: one unfiltered sweep may cover every trigger for less, unless the
    # brand's other traffic makes its pages too crowded (priced by their density).
    if len(sweeps) + len(split_details) > 1 and len(by_trigger) > 1:
        everyone = [r for group in by_trigger.values() for r in group]
        sweep, rest = _split_group(
            ALL_TRIGGERS, everyone, now, settings, rates.get(ALL_TRIGGERS), due
        )
        if sweep is not None and sweep.estimated_pages + len(rest) <= cost:
            sweeps, split_details = [sweep], rest
    details.extend(DetailRead(r.run_id, r.fired_at) for r in split_details)

    def priority(read: ListSweep | DetailRead) -> float:
        return read.oldest_fired_at if isinstance(read, ListSweep) else read.fired_at

    return PollPlan(reads=tuple(sorted([*sweeps, *details], key=priority)))


def _split_group(
    trigger: str | None,
    group: Sequence[LiveRun],
    now: float,
    settings: PollSettings,
    rate: float | None,
    due: Collection[str],
) -> tuple[ListSweep | None, list[LiveRun]]:
    """Cover the k newest runs with a sweep and read the older due ones in detail, with
    the k that costs the fewest reads this cycle (ties go to the wider sweep).

    Returns the sweep (None: detail reads only) and the runs to read in detail.
    """
    newest_first = sorted(group, key=lambda r: r.fired_at, reverse=True)
    if rate is None:
        # Only our own runs are known: price the sweep by their density.
        span = max(now - newest_first[-1].fired_at, 1e-9)
        rate = len(newest_first) / span

    # due_older[k]: how many of the runs older than the k newest are due (detail reads).
    due_flags = [r.run_id in due for r in newest_first]
    due_older = [0] * (len(newest_first) + 1)
    for i in range(len(newest_first) - 1, -1, -1):
        due_older[i] = due_older[i + 1] + int(due_flags[i])

    best_k, best_cost, best_pages = 0, float(due_older[0]), 0
    for k in range(settings.list_min_runs, len(newest_first) + 1):
        oldest = newest_first[k - 1]
        rows = max(rate * (now - oldest.fired_at), float(k))
        pages = max(1, math.ceil(rows / LIST_PAGE_SIZE))
        if pages > settings.max_sweep_pages:
            break  # older runs only reach further back: they are read by id
        cost = pages + due_older[k]
        if cost <= best_cost:
            best_k, best_cost, best_pages = k, cost, pages
    older_due = [r for r, due in zip(newest_first[best_k:], due_flags[best_k:], strict=True) if due]
    if best_k == 0:
        return None, older_due
    covered = newest_first[:best_k]
    oldest_fired = covered[-1].fired_at
    sweep = ListSweep(
        trigger_event_id=trigger,
        from_time=oldest_fired - settings.from_slack,
        run_ids=frozenset(r.run_id for r in covered),
        oldest_fired_at=oldest_fired,
        estimated_pages=best_pages,
    )
    return sweep, older_due
