"""Reading Pinkfish runs for the poller: one status read per due run, results at the end.

Pinkfish has no list read, so every check of a run costs one read: a run is checked
when it is due (:func:`due_runs`, on a :class:`Pace`): every ``interval`` seconds while
it is young (the document: every 2-5 s), every tenth of its age later, at most every
``max_interval`` (the document: 10-30 s for long-running workflows). Oldest first: the
oldest runs are the nearest to their deadline.

A run seen at an end (``COMPLETE``, ``FAILED``, ``TIMEOUT``) gets one more read, its
results (``fetch_results``), put in :attr:`RunRead.output`; for a bad end the output
also holds ``stepStatus``/``stepInfo``, so the dead letter says which step. Its steps
are its logs (the status read carries them), so the poller never reads it again for logs.

A 404 on a status read says the run is unknown to Pinkfish *now*: the run is left live
and read again when due, until its deadline (a run does not vanish; a fresh one may not
be readable yet). A 404 on a results read leaves the output without them. Any other
failure ends the poller's cycle (the :class:`~brew_bridge.typing.ReadSlots` contract):
a run whose results could not be read is read again, status and results, next time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from brew_bridge.errors import ApiError, AuthError
from brew_bridge.events import RunRead, is_terminal
from brew_bridge.store import RunRecord
from brew_bridge.targets.pinkfish.client import PinkfishClient
from brew_bridge.targets.pinkfish.wire import RunStatus
from brew_bridge.typing import ReadSlots

__all__ = ["Pace", "PinkfishRuns", "due_runs", "run_read"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Pace:
    """How often a live run is checked: every ``age * backoff_ratio`` seconds, within
    [``interval``, ``max_interval``] (the config's ``poll_interval_seconds`` and
    ``max_poll_interval_seconds``)."""

    interval: float
    max_interval: float
    backoff_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.interval <= self.max_interval:
            raise ValueError("the interval must be positive and at most max_interval")

    def gap(self, age: float) -> float:
        """Seconds between two checks of a run ``age`` seconds old."""
        return min(max(age * self.backoff_ratio, self.interval), self.max_interval)

    def is_due(self, run: RunRecord, now: float) -> bool:
        """Whether the run's gap has passed since it was last checked (or fired).

        A quarter interval early counts: a check is stamped when its answer arrives,
        later than the poller's cycle began, so an exact comparison would skip cycles.
        """
        last = run.last_checked_at if run.last_checked_at is not None else run.fired_at
        return now - last >= self.gap(now - run.fired_at) - self.interval / 4


def due_runs(runs: Iterable[RunRecord], now: float, pace: Pace) -> list[RunRecord]:
    """The runs whose next check is due at ``now``, oldest fire first."""
    return sorted((r for r in runs if pace.is_due(r, now)), key=lambda r: r.fired_at)


def run_read(run_id: str, seen: RunStatus, results: dict[str, Any] | None) -> RunRead:
    """A status read (and the results read of an ended run) as the bridge records it."""
    status = seen.bridge_status
    output: dict[str, Any] | None = None
    if status == "completed":
        output = results
    elif is_terminal(status):
        output = {"stepStatus": dict(seen.step_status), "stepInfo": dict(seen.step_info)}
        if results is not None:
            output["results"] = results
    return RunRead(
        run_id=run_id,
        status=status,
        error=seen.failure(),
        logs=seen.steps(),
        output=output,
    )


def _not_found(exc: ApiError) -> bool:
    """A 404 about the run (the only answer ReadSlots hands back; checked all the same)."""
    return exc.status == 404 and not isinstance(exc, AuthError)


class PinkfishRuns:
    """The poll side of the Pinkfish target."""

    def __init__(self, client: PinkfishClient, pace: Pace, *, fetch_results: bool) -> None:
        self._client = client
        self._pace = pace
        self._fetch_results = fetch_results

    async def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        for run in due_runs(runs, now, self._pace):
            seen = await self.read(run, reads)
            if seen is not None:
                yield [seen]

    async def read(self, run: RunRecord, reads: ReadSlots) -> RunRead | None:
        """The run now (and its results, when it ended); None when this read settles
        nothing (Pinkfish does not know the run, or we cannot ask)."""
        bound = log.bind(run_id=run.run_id, route=run.route)
        automation_id = run.ref
        if not automation_id:  # every fire stores it: a row from elsewhere
            bound.warning("Pinkfish run without its automation id; it cannot be read")
            return None
        try:
            seen = await reads.read(
                "detail", partial(self._client.status, automation_id, run.run_id)
            )
        except ApiError as exc:
            if not _not_found(exc):
                raise
            bound.warning("Pinkfish does not know the run; reading it again later", code=exc.code)
            return None
        results = None
        if is_terminal(seen.bridge_status) and self._fetch_results:
            try:
                results = await reads.read(
                    "detail", partial(self._client.results, automation_id, run.run_id)
                )
            except ApiError as exc:
                if not _not_found(exc):
                    raise
                bound.warning("Pinkfish has no results for the ended run", code=exc.code)
        return run_read(run.run_id, seen, results)
