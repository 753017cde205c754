"""The poller: follow every fired run to its end, on as few reads as possible.

Every ``poller.interval_seconds`` one cycle runs:

1. finish what the last cycle found ended but could not finish yet (logs to fetch,
   an outbox write that failed);
2. runs past their deadline (their route's ``run_deadline_seconds``, else the poller's)
   expire: canceled at the target first when ``cancel_on_deadline``, read once more (a
   run that ended on its own is recorded as it ended), then recorded ``timed_out``;
3. the target reads the others (:meth:`Target.poll`: it knows how to read many runs
   per request and which are due), each read first taking a slot of the poller's share
   of the read budget (``read_budget_share``): when the share is spent the cycle ends
   and the rest waits for the next one. Each run the target saw is recorded as it comes.
   A target that holds its reads until runs can have ended names when (``read_at``): the
   next cycle starts then if that comes before the interval's.

Every end is recorded with :meth:`Outbox.finish_run`; bad ends (failed, canceled,
timed out) are read with their node logs first (``fetch_logs``) and become dead letters.
An :class:`~brew_bridge.errors.AuthError` (a 401/403, or an answer the target types as
one because it is about the setup, not the run: Brew's ``404 BRAND_NOT_FOUND``) trips
the shared :class:`~brew_bridge.core.authgate.AuthGate`, ends the cycle without touching
any run, and the poller waits for the gate like the dispatcher does: one probe cycle per
interval. Only a 404 that is not an ``AuthError`` reaches the target's own handling; the
target decides whether it means the run is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import structlog

from ..config.sections import PollerConfig, RateLimit
from ..errors import ApiError, AuthError, TargetError, Unsupported
from ..events import TIMED_OUT, RunRead, is_terminal, run_dead_letter_reason
from ..observe.metrics import Metrics
from ..store import Outbox, RunRecord
from ..typing import Clock, ResultSink, Target
from .authgate import AuthGate
from .health import OutboxHealth
from .ratelimit import SlidingWindow

__all__ = ["CycleReport", "Poller", "StopCycle", "expired"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class CycleReport:
    """What one cycle did (tests, ``--once``, logs)."""

    live: int = 0
    reads: int = 0
    finished: int = 0
    stopped_early: str | None = None  # why the cycle ended before its plan did
    read_at: float | None = None  # the target asked for the next cycle then (epoch s)


class StopCycle(Exception):
    """End this cycle now (budget spent, the target unreachable or refusing)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def expired(
    runs: Sequence[RunRecord],
    now: float,
    deadline: float,
    *,
    per_route: Mapping[str, float] | None = None,
) -> list[RunRecord]:
    """The runs past their deadline (their route's, else ``deadline``), oldest fire first."""
    routes = per_route or {}
    return sorted(
        (r for r in runs if now - r.fired_at >= routes.get(r.route, deadline)),
        key=lambda r: r.fired_at,
    )


class _Reads:
    """The poller's read share as the target sees it (:class:`~brew_bridge.typing.ReadSlots`)."""

    def __init__(self, poller: Poller, report: CycleReport) -> None:
        self._poller = poller
        self._report = report

    async def read(self, mode: str, call: Callable[[], Awaitable[T]]) -> T:
        p = self._poller
        if p._share.try_acquire(p._clock()) > 0:
            raise StopCycle("read budget share spent")
        self._report.reads += 1
        p._metrics.run_reads.labels(target=p._target.name, mode=mode).inc()
        try:
            result = await call()
        except TargetError as exc:
            p._gate.observe(exc, p._clock())
            if isinstance(exc, AuthError):  # about the key or the setup, never about a run
                raise StopCycle(f"{mode} read refused: {exc}") from exc
            if isinstance(exc, ApiError) and exc.status == 404:
                raise
            log.warning("run read failed", mode=mode, error=str(exc))
            raise StopCycle(f"{mode} read failed: {exc}") from exc
        p._gate.observe(result, p._clock())
        return result

    def read_at(self, at: float) -> None:
        held = self._report.read_at
        self._report.read_at = at if held is None else min(held, at)


class Poller:
    """Polls live runs until each one ends."""

    def __init__(
        self,
        outbox: Outbox,
        target: Target,
        *,
        config: PollerConfig,
        read_limit: RateLimit,
        metrics: Metrics,
        gate: AuthGate,
        health: OutboxHealth,
        results: ResultSink | None = None,
        deadlines: Mapping[str, float] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._outbox = outbox
        self._target = target
        self._config = config
        self._metrics = metrics
        self._gate = gate
        self._health = health
        self._results = results
        self._deadlines = dict(deadlines or {})  # route -> its own run deadline
        self._clock = clock
        share = max(1, math.floor(read_limit.limit * config.read_budget_share))
        self._share = SlidingWindow(share, read_limit.window_seconds)
        self._ended: dict[str, RunRead] = {}  # seen ended, waiting for logs / the outbox
        # Every delivery following each live run (a run adopted by several: Boring
        # Marketing's 409); the run is read once and its end recorded for each.
        self._followers: dict[str, list[RunRecord]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            started = self._clock()
            report = CycleReport()
            try:
                report = await self.poll_once()
            except Exception:
                log.exception("poll cycle failed")
            wait = self._config.interval_seconds - (self._clock() - started)
            if report.read_at is not None:
                wait = min(wait, report.read_at - self._clock())
            if self._gate.is_open:
                wait = max(wait, self._gate.seconds_to_probe(self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.05, wait))

    async def poll_once(self) -> CycleReport:
        """One cycle: finish the ended, expire the overdue, read the due."""
        report = CycleReport()
        now = self._clock()
        try:
            runs = await asyncio.to_thread(self._outbox.live_runs, None, self._target.name)
        except Exception as exc:
            self._health.failed("live_runs", exc)
            report.stopped_early = "outbox"
            return report
        # While the gate is open, a cycle is a probe: only with runs to read, one per interval.
        if self._gate.is_open and (not runs or not self._gate.allow(now)):
            report.stopped_early = "auth circuit open"
            return report
        report.live = len(runs)
        by_id = {r.run_id: r for r in runs}
        self._followers = {}
        for r in runs:
            self._followers.setdefault(r.run_id, []).append(r)
        for run_id in [i for i in self._ended if i not in by_id]:
            del self._ended[run_id]  # finished elsewhere, e.g. by a redrive
        reads = _Reads(self, report)
        try:
            # Runs seen ended earlier are finished here, and are not read again.
            ended = set(self._ended)
            for run_id in ended:
                await self._finish_one(by_id[run_id], self._ended[run_id], reads, report)
            # A run several deliveries follow (adopted) is read and finished once, for all.
            rest = [by_id[i] for i in dict.fromkeys(r.run_id for r in runs) if i not in ended]
            overdue = expired(
                rest, now, self._config.run_deadline_seconds, per_route=self._deadlines
            )
            for run in overdue:
                await self._expire(run, reads, report)
            gone = {r.run_id for r in overdue}
            async for seen in self._target.poll(
                [r for r in rest if r.run_id not in gone], now, reads
            ):
                await self._absorb([(by_id[s.run_id], s) for s in seen], reads, report)
        except StopCycle as stop:
            report.stopped_early = stop.why
        self._metrics.runs_in_flight.set(report.live - report.finished)
        return report

    # -- what reads showed ---------------------------------------------------------

    async def _absorb(
        self, pairs: Sequence[tuple[RunRecord, RunRead]], reads: _Reads, report: CycleReport
    ) -> None:
        """What one read showed: live runs are touched (one write), ended ones finished."""
        live = [run.run_id for run, seen in pairs if not is_terminal(seen.status)]
        if live:
            try:
                await asyncio.to_thread(self._outbox.touch_runs, live, self._clock())
            except Exception as exc:
                self._health.failed("touch_runs", exc)
                raise StopCycle("outbox") from exc
        ended = [(run, seen) for run, seen in pairs if is_terminal(seen.status)]
        for run, seen in ended:
            self._ended[run.run_id] = seen
        for run, seen in ended:
            await self._finish_one(run, seen, reads, report)

    async def _finish_one(
        self, run: RunRecord, seen: RunRead, reads: _Reads, report: CycleReport
    ) -> None:
        """Finish a run seen ended, reading its node logs first when it ended badly; a stuck
        run the target canceled fires again instead, while its delivery may."""
        if seen.refire and await self._refire(run, seen):
            self._ended.pop(run.run_id, None)
            report.finished += 1
            return
        logs = seen.logs
        if run_dead_letter_reason(seen.status) and logs is None and self._config.fetch_logs:
            detailed = await self._target.read_run(run, reads, logs=True)
            if detailed is not None:  # None: no logs to be had; finish without them
                logs = detailed.logs
        await self._finish(
            run,
            seen.status,
            error=seen.error,
            logs=logs,
            ended_at=seen.ended_at,
            report=report,
            output=seen.output,
        )

    async def _refire(self, run: RunRecord, seen: RunRead) -> bool:
        """End a stuck run (canceled at the target) and fire its delivery again; False
        when the delivery has started as many runs as the target allows."""
        error = seen.error or f"canceled at {self._target.title} as stuck"
        refire = partial(
            self._outbox.refire_run,
            run.run_id,
            now=self._clock(),
            error=error,
            max_runs=1 + self._target.max_refires,
        )
        try:
            requeued = await asyncio.to_thread(refire)
        except Exception as exc:
            self._health.failed("refire_run", exc)
            raise StopCycle("outbox") from exc
        self._health.succeeded()
        if requeued:
            self._metrics.runs_terminal.labels(
                target=run.target, route=run.route, status=seen.status
            ).inc()
            log.warning(
                "stuck run canceled; its event fires again",
                run_id=run.run_id,
                route=run.route,
                idempotency_key=run.idempotency_key,
                error=error,
            )
        return requeued

    async def _expire(self, run: RunRecord, reads: _Reads, report: CycleReport) -> None:
        """A run past its deadline: cancel it if configured, then record ``timed_out``."""
        deadline = self._deadlines.get(run.route, self._config.run_deadline_seconds)
        canceled = False
        if self._config.cancel_on_deadline:
            try:
                await self._target.cancel(run, f"no end within {deadline:g} s")
                canceled = True
            except ApiError as exc:
                self._gate.observe(exc, self._clock())
                # 404 / 409: it is gone or ended meanwhile; read it below. An AuthError
                # (whatever its status) says nothing about the run.
                if isinstance(exc, AuthError) or exc.status not in (404, 409):
                    raise StopCycle(f"cancel failed: {exc}") from exc
            except Unsupported:
                pass  # the target cannot cancel (Pinkfish): the run is only given up on
            except TargetError as exc:
                raise StopCycle(f"cancel failed: {exc}") from exc
        seen: RunRead | None = None
        if self._config.fetch_logs or (self._config.cancel_on_deadline and not canceled):
            seen = await self._target.read_run(run, reads, logs=True)
        if seen is not None and is_terminal(seen.status) and not canceled:
            # It ended on its own before we gave up on it: record what really happened.
            self._ended[run.run_id] = seen
            await self._finish_one(run, seen, reads, report)
            return
        await self._finish(
            run,
            TIMED_OUT,
            error=f"no end within {deadline:g} s of the fire"
            + (f" (canceled at {self._target.title})" if canceled else ""),
            logs=seen.logs if seen is not None else None,
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
        output: dict[str, Any] | None = None,
    ) -> None:
        now = self._clock()
        finish = partial(
            self._outbox.finish_run,
            run.run_id,
            status=status,
            now=now,
            error=error,
            logs=logs,
            output=output,
        )
        try:
            dead_id = await asyncio.to_thread(finish)
        except Exception as exc:
            self._health.failed("finish_run", exc)
            raise StopCycle("outbox") from exc
        self._health.succeeded()
        self._ended.pop(run.run_id, None)
        end = ended_at if ended_at is not None else now
        reason = run_dead_letter_reason(status)
        for follower in self._followers.pop(run.run_id, None) or [run]:
            report.finished += 1
            labels = {"target": follower.target, "route": follower.route}
            self._metrics.runs_terminal.labels(**labels, status=status).inc()
            self._metrics.run_duration.labels(**labels).observe(max(0.0, end - follower.fired_at))
            bound = log.bind(
                run_id=follower.run_id,
                route=follower.route,
                idempotency_key=follower.idempotency_key,
                status=status,
            )
            if reason is not None and dead_id is not None:  # one dead letter per follower
                self._metrics.dead_letters.labels(
                    stage="run", route=follower.route, reason=reason
                ).inc()
                bound.warning("run ended badly; dead-lettered", error=error)
            else:
                bound.info("run ended", seconds=round(end - follower.fired_at, 3))
            if self._results is not None:
                await self._results.publish_result(
                    follower, status=status, finished_at=end, error=error, output=output
                )
