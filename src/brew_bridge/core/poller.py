"""The poller: follow every fired run to its end, on as few reads as possible.

Every ``poller.interval_seconds`` one cycle runs:

1. finish what the last cycle found ended but could not finish yet (node logs to fetch);
2. ask :func:`~brew_bridge.targets.brew.pollplan.plan_poll` what to read: runs past
   ``run_deadline_seconds`` expire (canceled first when ``cancel_on_deadline``, then
   recorded ``timed_out``); list sweeps read many runs per request; detail reads take
   lone runs and stragglers; the oldest runs come first;
3. read, each read first taking a slot of the poller's share of the run-read budget
   (``read_budget_share``); when the share is spent the cycle ends and the rest waits
   for the next one. The client itself waits for the shared ``run_read`` budget, which
   is separate from the ``fire`` budget, so reads and fires never starve each other.

Every terminal status is recorded with :meth:`Outbox.finish_run`; failed, canceled and
timed-out runs are fetched with their node logs first (``fetch_logs``), and the outbox
writes their dead letters. A 401/403 trips the shared :class:`AuthGate` and the poller
waits for it like the dispatcher does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from brew_bridge.config import PollerConfig, RateLimit
from brew_bridge.core.dispatcher import AuthGate
from brew_bridge.core.ratelimit import SlidingWindow
from brew_bridge.errors import ApiError, TargetError
from brew_bridge.events import Reason
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store.outbox import Outbox, RunRecord
from brew_bridge.targets.brew.client import TERMINAL_STATUSES, BrewClient, RunInfo
from brew_bridge.targets.brew.pollplan import (
    LIST_PAGE_SIZE,
    DetailRead,
    ListSweep,
    PollSettings,
    plan_poll,
)

__all__ = ["CycleReport", "Poller", "ResultSink", "iso_utc", "parse_iso"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Terminal statuses that become dead letters (the outbox writes them).
_DEAD_REASONS = {
    "failed": Reason.RUN_FAILED,
    "canceled": Reason.RUN_CANCELED,
    "timed_out": Reason.RUN_TIMED_OUT,
}
# Complete sweeps that must miss a run before it is read by id instead.
_STRAGGLER_MISSES = 2


class ResultSink(Protocol):
    """Where each run's end goes besides the outbox (the Kafka result topic)."""

    async def publish_result(
        self,
        run: RunRecord,
        *,
        status: str,
        finished_at: float,
        error: str | None = None,
        event_id: str | None = None,
    ) -> None: ...


@dataclass
class CycleReport:
    """What one cycle did (tests, ``--once``, logs)."""

    live: int = 0
    reads: int = 0
    finished: int = 0
    stopped_early: str | None = None  # why the cycle ended before its plan did


class _StopCycle(Exception):
    """End this cycle now (budget spent, Brew unreachable or refusing)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def iso_utc(ts: float) -> str:
    """Epoch seconds as Brew's ISO-8601 form (``2026-04-08T12:34:56.789Z``)."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    """Brew's ISO time as epoch seconds, or None when absent or unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Poller:
    """Polls live runs until each one ends."""

    def __init__(
        self,
        outbox: Outbox,
        client: BrewClient,
        *,
        config: PollerConfig,
        read_limit: RateLimit,
        metrics: Metrics,
        gate: AuthGate,
        results: ResultSink | None = None,
        clock: Callable[[], float] = time.time,
        settings: PollSettings | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._config = config
        self._metrics = metrics
        self._gate = gate
        self._results = results
        self._clock = clock
        self._settings = settings or PollSettings(
            interval=config.interval_seconds, deadline=config.run_deadline_seconds
        )
        share = max(1, math.floor(read_limit.limit * config.read_budget_share))
        self._share = SlidingWindow(share, read_limit.window_seconds)
        self._misses: dict[str, int] = {}
        self._density: dict[str | None, float] = {}
        self._ended: dict[str, RunInfo] = {}  # seen ended, waiting for logs / the outbox
        self.outbox_error: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            started = self._clock()
            try:
                await self.poll_once()
            except Exception:
                log.exception("poll cycle failed")
            wait = self._settings.interval - (self._clock() - started)
            if self._gate.is_open:
                wait = max(wait, self._gate.seconds_to_probe(self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.05, wait))

    async def poll_once(self) -> CycleReport:
        """One cycle: finish the ended, expire the overdue, read the due."""
        report = CycleReport()
        now = self._clock()
        try:
            runs = await asyncio.to_thread(self._outbox.live_runs)
        except Exception as exc:
            self._outbox_failed("live_runs", exc)
            report.stopped_early = "outbox"
            return report
        # While the gate is open, a cycle is a probe: only with runs to read, one per interval.
        if self._gate.is_open and (not runs or not self._gate.allow(now)):
            report.stopped_early = "auth circuit open"
            return report
        report.live = len(runs)
        by_id = {r.run_id: r for r in runs}
        self._forget_gone(by_id)
        try:
            await self._finish_ended(by_id, report)
            plan = plan_poll(
                [r for r in runs if r.run_id not in self._ended],
                now,
                self._settings,
                stragglers={i for i, n in self._misses.items() if n >= _STRAGGLER_MISSES},
                rows_per_second=self._density,
            )
            for run_id in plan.expired:
                await self._expire(by_id[run_id], report)
            for read in plan.reads:
                if isinstance(read, ListSweep):
                    await self._sweep(read, by_id, report)
                else:
                    await self._detail(read, by_id[read.run_id], report)
        except _StopCycle as stop:
            report.stopped_early = stop.why
        self._metrics.runs_in_flight.set(report.live - report.finished)
        return report

    # -- reads ---------------------------------------------------------------------

    def _take_read(self) -> None:
        """Take a slot of the poller's read share, or end the cycle."""
        if self._share.try_acquire(self._clock()) > 0:
            raise _StopCycle("read budget share spent")

    async def _call(self, mode: str, report: CycleReport, call: Callable[[], Awaitable[T]]) -> T:
        """Make one read; feed the gate; a 404 is raised, other failures end the cycle."""
        self._take_read()
        report.reads += 1
        self._metrics.run_reads.labels(mode=mode).inc()
        try:
            result = await call()
        except TargetError as exc:
            self._gate.observe(exc, self._clock())
            if isinstance(exc, ApiError) and exc.status == 404:
                raise
            log.warning("run read failed", mode=mode, error=str(exc))
            raise _StopCycle(f"{mode} read failed: {exc}") from exc
        self._gate.observe(result, self._clock())
        return result

    async def _sweep(
        self, sweep: ListSweep, by_id: dict[str, RunRecord], report: CycleReport
    ) -> None:
        expected = set(sweep.run_ids)
        seen: dict[str, RunInfo] = {}
        cursor: str | None = None
        rows = 0
        complete = False
        while True:
            page = await self._call(
                "list",
                report,
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
        now = self._clock()
        span = now - (sweep.from_time if complete else sweep.oldest_fired_at)
        self._density[sweep.trigger_event_id] = rows / max(span, 1e-3)
        for run_id in expected - seen.keys():
            if complete:  # the list should have shown it: after a few misses, read it by id
                self._misses[run_id] = self._misses.get(run_id, 0) + 1
        for run_id in seen:
            self._misses.pop(run_id, None)
        await self._absorb([(by_id[i], info) for i, info in seen.items()], now, report)

    async def _detail(self, read: DetailRead, run: RunRecord, report: CycleReport) -> None:
        try:
            info = await self._call(
                "detail",
                report,
                partial(self._client.get_run, read.run_id, include_logs=self._config.fetch_logs),
            )
        except ApiError as exc:  # 404: Brew does not know this run
            await self._finish(
                run,
                "failed",
                error=f"Brew does not know run {run.run_id} ({exc.status} {exc.code})",
                logs=None,
                ended_at=None,
                report=report,
            )
            return
        await self._absorb([(run, info)], self._clock(), report)

    async def _absorb(
        self, pairs: Sequence[tuple[RunRecord, RunInfo]], now: float, report: CycleReport
    ) -> None:
        """Record what reads showed: ended runs are finished, live ones touched."""
        live = [run.run_id for run, info in pairs if info.status not in TERMINAL_STATUSES]
        if live:
            try:
                await asyncio.to_thread(self._outbox.touch_runs, live, now)
            except Exception as exc:
                self._outbox_failed("touch_runs", exc)
                raise _StopCycle("outbox") from exc
        ended = [(run, info) for run, info in pairs if info.status in TERMINAL_STATUSES]
        for run, info in ended:
            self._ended[run.run_id] = info
        for run, info in ended:
            await self._finish_one(run, info, report)

    async def _finish_ended(self, by_id: dict[str, RunRecord], report: CycleReport) -> None:
        for run_id, info in list(self._ended.items()):
            await self._finish_one(by_id[run_id], info, report)

    async def _finish_one(self, run: RunRecord, info: RunInfo, report: CycleReport) -> None:
        """Finish a run seen ended, reading its node logs first when it ended badly."""
        logs = info.logs
        if info.status in _DEAD_REASONS and logs is None and self._config.fetch_logs:
            try:
                detailed = await self._call(
                    "logs", report, partial(self._client.get_run, run.run_id, include_logs=True)
                )
            except ApiError:  # 404: no logs to be had; finish without them
                detailed = None
            if detailed is not None:
                logs = detailed.logs
        await self._finish(
            run,
            info.status,
            error=info.error,
            logs=logs,
            ended_at=parse_iso(info.completed_at),
            report=report,
        )

    async def _expire(self, run: RunRecord, report: CycleReport) -> None:
        """A run past its deadline: cancel it if configured, then record ``timed_out``."""
        canceled = False
        if self._config.cancel_on_deadline:
            try:
                await self._client.cancel_run(
                    run.run_id,
                    reason=f"brew-bridge: no end within {self._settings.deadline:g} s",
                )
                canceled = True
            except ApiError as exc:
                self._gate.observe(exc, self._clock())
                if exc.status not in (404, 409):  # 409: it ended meanwhile; read it below
                    raise _StopCycle(f"cancel failed: {exc}") from exc
            except TargetError as exc:
                raise _StopCycle(f"cancel failed: {exc}") from exc
        info: RunInfo | None = None
        if self._config.fetch_logs or (self._config.cancel_on_deadline and not canceled):
            try:
                info = await self._call(
                    "logs", report, partial(self._client.get_run, run.run_id, include_logs=True)
                )
            except ApiError:
                info = None
        if info is not None and info.status in TERMINAL_STATUSES and not canceled:
            # It ended on its own before we gave up on it: record what really happened.
            self._ended[run.run_id] = info
            await self._finish_one(run, info, report)
            return
        await self._finish(
            run,
            "timed_out",
            error=f"no end within {self._settings.deadline:g} s of the fire"
            + (" (canceled at Brew)" if canceled else ""),
            logs=info.logs if info is not None else None,
            ended_at=None,
            report=report,
        )

    # -- recording -----------------------------------------------------------------

    async def _finish(
        self,
        run: RunRecord,
        status: str,
        *,
        error: str | None,
        logs: Sequence[dict[str, Any]] | None,
        ended_at: float | None,
        report: CycleReport,
    ) -> None:
        now = self._clock()
        try:
            dead_id = await asyncio.to_thread(
                self._outbox.finish_run, run.run_id, status=status, now=now, error=error, logs=logs
            )
        except Exception as exc:
            self._outbox_failed("finish_run", exc)
            raise _StopCycle("outbox") from exc
        self.outbox_error = None
        self._ended.pop(run.run_id, None)
        self._misses.pop(run.run_id, None)
        report.finished += 1
        end = ended_at if ended_at is not None else now
        self._metrics.runs_terminal.labels(route=run.route, status=status).inc()
        self._metrics.run_duration.labels(route=run.route).observe(max(0.0, end - run.fired_at))
        reason = _DEAD_REASONS.get(status)
        bound = log.bind(
            run_id=run.run_id, route=run.route, idempotency_key=run.idempotency_key, status=status
        )
        if reason is not None and dead_id is not None:
            self._metrics.dead_letters.labels(stage="run", route=run.route, reason=reason).inc()
            bound.warning("run ended badly; dead-lettered", dead_letter_id=dead_id, error=error)
        else:
            bound.info("run ended", seconds=round(end - run.fired_at, 3))
        if self._results is not None:
            await self._results.publish_result(run, status=status, finished_at=end, error=error)

    def _forget_gone(self, live: dict[str, RunRecord]) -> None:
        """Drop memory of runs no longer live (finished elsewhere, e.g. by a redrive)."""
        for memo in (self._misses, self._ended):
            for run_id in [i for i in memo if i not in live]:
                del memo[run_id]

    def _outbox_failed(self, what: str, exc: Exception) -> None:
        self.outbox_error = f"{what} failed: {exc}"
        log.error("outbox write failed", operation=what, error=str(exc))
