"""Reading Brew runs for the poller: list sweeps and detail reads, as ``pollplan`` plans them.

A sweep pages through ``GET /v1/automations/runs`` (newest first) until it has seen
every run it covers; what it learns about the brand's page density prices the next
sweep. A run that complete sweeps keep missing (clock skew, a run the list filter
hides) becomes a straggler and is read by id from then on. Every read goes through the
poller's :class:`~brew_bridge.typing.ReadSlots`, which holds the budget and the gate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial

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
from brew_bridge.targets.brew.wire import RunInfo
from brew_bridge.timefmt import iso_utc, parse_iso
from brew_bridge.typing import Clock, ReadSlots

__all__ = ["BrewRuns", "run_read"]

# Complete sweeps that must miss a run before it is read by id instead.
_STRAGGLER_MISSES = 2


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
    """The poll side of the Brew target: remembers page densities and stragglers."""

    def __init__(
        self,
        client: BrewClient,
        settings: PollSettings,
        *,
        fetch_logs: bool,
        clock: Clock,
    ) -> None:
        self._client = client
        self._settings = settings
        self._fetch_logs = fetch_logs
        self._clock = clock
        self._misses: dict[str, int] = {}
        self._density: dict[str | None, float] = {}

    async def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        live = {r.run_id for r in runs}
        for run_id in [i for i in self._misses if i not in live]:
            del self._misses[run_id]  # ended, or finished elsewhere
        by_id = {r.run_id: r for r in runs}
        plan = plan_poll(
            runs,
            now,
            self._settings,
            stragglers={i for i, n in self._misses.items() if n >= _STRAGGLER_MISSES},
            rows_per_second=self._density,
        )
        for read in plan.reads:
            if isinstance(read, ListSweep):
                yield await self._sweep(read, reads)
            else:
                yield [await self._detail(read, by_id[read.run_id], reads)]

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        try:
            return await self._get(run.run_id, reads, logs=logs, mode="logs")
        except ApiError:  # 404: Brew does not know it
            return None

    async def _get(self, run_id: str, reads: ReadSlots, *, logs: bool, mode: str) -> RunRead:
        info = await reads.read(mode, partial(self._client.get_run, run_id, include_logs=logs))
        return run_read(info)

    async def _sweep(self, sweep: ListSweep, reads: ReadSlots) -> list[RunRead]:
        expected = set(sweep.run_ids)
        seen: dict[str, RunInfo] = {}
        cursor: str | None = None
        rows = 0
        complete = False
        while True:
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
            rows += len(page.runs)
            for info in page.runs:
                if info.run_id in expected:
                    seen[info.run_id] = info
            if len(seen) == len(expected):
                break
            if not page.has_more or page.cursor is None:
                complete = True
                break
            cursor = page.cursor
        span = self._clock() - (sweep.from_time if complete else sweep.oldest_fired_at)
        self._density[sweep.trigger_event_id] = rows / max(span, 1e-3)
        for run_id in expected - seen.keys():
            if complete:  # the list should have shown it: after a few misses, read it by id
                self._misses[run_id] = self._misses.get(run_id, 0) + 1
        for run_id in seen:
            self._misses.pop(run_id, None)
        return [run_read(info) for info in seen.values()]

    async def _detail(self, read: DetailRead, run: RunRecord, reads: ReadSlots) -> RunRead:
        try:
            return await self._get(read.run_id, reads, logs=self._fetch_logs, mode="detail")
        except ApiError as exc:  # 404: Brew does not know this run
            return RunRead(
                run.run_id,
                "failed",
                error=f"Brew does not know run {run.run_id} ({exc.status} {exc.code})",
                logs=(),  # there are none to fetch
            )
