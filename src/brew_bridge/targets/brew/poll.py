"""Reading Brew runs for the poller: list sweeps and detail reads, as ``pollplan`` plans them.

A sweep pages through ``GET /v1/automations/runs`` (newest first) until it has seen
every run it covers; what it learns about the brand's page density prices the next
sweep. A run that complete sweeps keep missing (clock skew, a run the list filter
hides) becomes a straggler and is read by id from then on. Each run seen ended teaches
its trigger's run length (:class:`RunLengths`), which tells the plan when the next runs
can have ended; while the plan holds, the poller is asked to wake when it is time to read.
Every read goes through the poller's :class:`~brew_bridge.typing.ReadSlots`, which holds
the budget and the gate.

A run read answered ``404 AUTOMATION_RUN_NOT_FOUND`` does not end the run at once (a
read served by a replica that has not seen the fire yet, a blip behind Brew's gateway):
the run is left alone for ``not_found_confirm_seconds`` and then read by id again, on a
later cycle; only when that read says the same is the run recorded ``failed``, with an
error saying Brew no longer knows it. A 404 with any other code (a proxy's, a route the
server lacks) says nothing about the run: it is read again next cycle. Answers about the
setup (``404 BRAND_NOT_FOUND``, ...) never get here: the client types them as
``AuthError``, which opens the gate and ends the cycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial

import structlog

from brew_bridge.errors import ApiError
from brew_bridge.events import RunRead
from brew_bridge.store import RunRecord
from brew_bridge.targets.brew.client import BrewClient
from brew_bridge.targets.brew.pollplan import (
    LIST_PAGE_SIZE,
    DetailRead,
    ListSweep,
    PollSettings,
    plan_poll,
)
from brew_bridge.targets.brew.runlengths import RunLengths
from brew_bridge.targets.brew.wire import RunInfo
from brew_bridge.timefmt import iso_utc, parse_iso
from brew_bridge.typing import Clock, ReadSlots

__all__ = ["RUN_NOT_FOUND", "BrewRuns", "run_read"]

log = structlog.get_logger(__name__)

# Complete sweeps that must miss a run before it is read by id instead.
_STRAGGLER_MISSES = 2
# The one answer that says Brew does not know a run (brew-api.md §8).
RUN_NOT_FOUND = "AUTOMATION_RUN_NOT_FOUND"
# Default wait before the read that confirms a RUN_NOT_FOUND, in poll intervals.
_CONFIRM_INTERVALS = 5.0


def run_read(info: RunInfo) -> RunRead:
    """A Brew run as the bridge records it (the status is already normalised)."""
    return RunRead(
        run_id=info.run_id,
        status=info.status,
        error=info.error,
        logs=info.logs,
        ended_at=parse_iso(info.completed_at),
    )


class BrewRuns:
    """The poll side of the Brew target: remembers page densities, run lengths,
    stragglers and the runs Brew said it does not know (until a second read confirms or
    refutes it).

    ``not_found_confirm_seconds``: the wait between a ``404 AUTOMATION_RUN_NOT_FOUND``
    and the read that confirms it (default: five poll intervals).
    """

    def __init__(
        self,
        client: BrewClient,
        settings: PollSettings,
        *,
        fetch_logs: bool,
        clock: Clock,
        not_found_confirm_seconds: float | None = None,
    ) -> None:
        if not_found_confirm_seconds is None:
            not_found_confirm_seconds = _CONFIRM_INTERVALS * settings.interval
        if not_found_confirm_seconds < 0:
            raise ValueError("not_found_confirm_seconds must be >= 0")
        self._client = client
        self._settings = settings
        self._fetch_logs = fetch_logs
        self._clock = clock
        self._confirm_after = not_found_confirm_seconds
        self._misses: dict[str, int] = {}
        self._density: dict[str | None, float] = {}
        self._lengths = RunLengths()
        self._not_found: dict[str, float] = {}  # run id -> when Brew first said it is unknown

    async def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        live = {r.run_id for r in runs}
        for forget in (self._misses, self._not_found):
            for run_id in [i for i in forget if i not in live]:
                del forget[run_id]  # ended, or finished elsewhere
        # A run Brew said it does not know is not read again before the confirming read
        # is due, and that read is by id (a sweep that misses it would prove nothing).
        waiting = {i for i, at in self._not_found.items() if now - at < self._confirm_after}
        by_id = {r.run_id: r for r in runs}
        plan = plan_poll(
            [r for r in runs if r.run_id not in waiting],
            now,
            self._settings,
            stragglers={i for i, n in self._misses.items() if n >= _STRAGGLER_MISSES}
            | (self._not_found.keys() - waiting),
            rows_per_second=self._density,
            lengths=self._lengths,
        )
        if plan.hold_until is not None:
            reads.read_at(plan.hold_until)
        for read in plan.reads:
            if isinstance(read, ListSweep):
                shown, ended = await self._sweep(read, reads, by_id)
                if shown:
                    self._learn(by_id, shown)
                    yield shown  # what a sweep cut short learned is kept
                if ended is not None:
                    raise ended
            else:
                seen = await self._detail(read, by_id[read.run_id], reads)
                if seen is not None:
                    self._learn(by_id, [seen])
                    yield [seen]

    def _learn(self, runs: Mapping[str, RunRecord], seen: Sequence[RunRead]) -> None:
        for read in seen:
            if read.ended_at is not None:
                run = runs[read.run_id]
                self._lengths.saw(run.action, run.fired_at, read.ended_at)

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        try:
            return await self._get(run.run_id, reads, logs=logs, mode="logs")
        except ApiError:  # 404: Brew does not know it
            return None

    async def _get(self, run_id: str, reads: ReadSlots, *, logs: bool, mode: str) -> RunRead:
        info = await reads.read(mode, partial(self._client.get_run, run_id, include_logs=logs))
        return run_read(info)

    async def _sweep(
        self, sweep: ListSweep, reads: ReadSlots, runs: Mapping[str, RunRecord]
    ) -> tuple[list[RunRead], Exception | None]:
        """The runs the sweep showed, and what ended it early (the cycle's end: raise it
        once the runs are recorded). Cut short (the budget, a failure, the page bound),
        it still keeps what its pages showed and how dense they were."""
        expected = set(sweep.run_ids)
        seen: dict[str, RunInfo] = {}
        cursor: str | None = None
        rows = 0
        oldest_shown: float | None = None  # the oldest start on the pages read
        complete = False
        ended: Exception | None = None
        for _ in range(self._settings.max_sweep_pages):
            try:
                page = await reads.read(
                    "list",
                    partial(
                        self._client.list_runs,
                        trigger_event_id=sweep.trigger_event_id,
                        from_=iso_utc(sweep.from_time),
                        limit=LIST_PAGE_SIZE,
                        cursor=cursor,
                    ),
                )
            except Exception as exc:  # the cycle ends; what was read so far still counts
                ended = exc
                break
            rows += len(page.runs)
            for info in page.runs:
                if info.run_id in expected:
                    seen[info.run_id] = info
                started = parse_iso(info.started_at)
                if started is not None:
                    oldest_shown = started if oldest_shown is None else min(oldest_shown, started)
            if len(seen) == len(expected):
                break
            if not page.has_more or page.cursor is None:
                complete = True
                break
            cursor = page.cursor
        if complete:
            span = self._clock() - sweep.from_time
        elif oldest_shown is not None:
            # The pages read reach this far back; a sweep that found its runs on the
            # first page still read rows older than its oldest run.
            span = self._clock() - oldest_shown
        else:
            span = self._clock() - sweep.oldest_fired_at
        if rows:
            self._density[sweep.trigger_event_id] = rows / max(span, 1e-3)
        # Read to its bound without finding them all: the unseen runs sit deeper than any
        # sweep goes (a replayed fire's run started at its first, unanswered acceptance,
        # long before the fire we recorded).
        bounded = ended is None and not complete and len(seen) < len(expected)
        slack = self._settings.from_slack
        for run_id in expected - seen.keys():
            # The list ended, the pages reached back past its fire, or no sweep reaches
            # it: after a few such misses the run is read by id.
            reached = oldest_shown is not None and oldest_shown <= runs[run_id].fired_at - slack
            if complete or reached or bounded:
                self._misses[run_id] = self._misses.get(run_id, 0) + 1
        for run_id in seen:
            self._misses.pop(run_id, None)
            self._not_found.pop(run_id, None)
        return [run_read(info) for info in seen.values()], ended

    async def _detail(self, read: DetailRead, run: RunRecord, reads: ReadSlots) -> RunRead | None:
        """The run as read by id; None when this read settles nothing (see the module)."""
        try:
            seen = await self._get(read.run_id, reads, logs=self._fetch_logs, mode="detail")
        except ApiError as exc:  # a 404 (ReadSlots re-raises no other answer)
            return self._unknown(run, exc)
        if self._not_found.pop(run.run_id, None) is not None:
            log.info("Brew knows the run again; it was not lost", run_id=run.run_id)
        return seen

    def _unknown(self, run: RunRecord, exc: ApiError) -> RunRead | None:
        """A 404 on a read by id: a first ``AUTOMATION_RUN_NOT_FOUND`` is remembered,
        a second one at least ``_confirm_after`` later fails the run."""
        bound = log.bind(run_id=run.run_id, status=exc.status, code=exc.code)
        if exc.code != RUN_NOT_FOUND:
            bound.warning("run read answered 404 without saying the run is unknown; read again")
            return None
        now = self._clock()
        first = self._not_found.get(run.run_id)
        if first is None or now - first < self._confirm_after:
            self._not_found.setdefault(run.run_id, now)
            bound.warning(
                "Brew says it does not know the run; reading it again before giving up",
                confirm_in_seconds=self._confirm_after,
            )
            return None
        del self._not_found[run.run_id]
        return RunRead(
            run.run_id,
            "failed",
            error=(
                f"Brew no longer knows run {run.run_id}: two reads {now - first:.1f} s apart "
                f"answered {exc.status} {exc.code}"
            ),
            logs=(),  # there are none to fetch
        )
