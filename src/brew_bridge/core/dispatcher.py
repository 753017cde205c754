"""The dispatcher: due outbox rows -> one fire each -> runs recorded, retry, or dead letter.

A loop keeps up to ``dispatcher.concurrency`` fires in flight. Each claimed row is
fired through its :class:`~brew_bridge.typing.Target` with its own Idempotency-Key on
every attempt; the target waits for its "fire" rate budget before sending (never an
attempt). What happens next is decided by the pure :func:`decide`:

* accepted (first time or a replay): fired; the fire's instance id and every run id
  are recorded, the poller takes over;
* no answer, or an unknown outcome (timeout / reset after sending): retry later with
  the same key, which the target answers with the original runs;
* what else is retried, waited on or refused for good is the target's call
  (:meth:`Target.classify`); the delays are ``retry.py``'s;
* a refusal, or retries spent: a ``fire`` dead letter with the whole envelope;
* 401 / 403: the :class:`~brew_bridge.core.authgate.AuthGate` opens, firing stops, rows
  go back to ``pending`` with no attempt counted, readiness turns false and the log
  says what to fix. One probe per interval tries again (the key is re-read on every
  request); the first answer that is not 401/403 closes the gate.

Ordering: ``claim_due(ordered=True)`` never hands out a row while an earlier row with
the same ordering key is still queued or firing, so one key's events fire in outbox
order and a failing row holds back only its own key; with ``ordering_scope: route`` (the
default) only within its own route, so a row waiting on a 422 does not hold back the
same person's mail on other routes.

Outbox calls run in a worker thread (``asyncio.to_thread``; the outbox serialises
them), so a ``synchronous=FULL`` fsync never stalls the fires in flight. Accepted fires
are recorded together: those that finish while one transaction commits share the next
(``marks.py``), so the fsyncs are not a queue every fire stands in.

When the outbox fails (disk full, a read-only file, a lock held too long), the loop
backs off (0.1 s doubling to 5 s) instead of spinning, and ``/readyz`` says so until
the next outbox call that succeeds. An outcome that could not be recorded (the runs a
fire started) is kept and recorded again until it is stored; its row stays held.
Claimed rows are leased: a firing row this process no longer holds, whose lease ran
out, is pending again without a restart.

Stopping: a fire not sent yet is let go at once. Claimed rows not started go back to
``pending``; the ``fire`` rate budget is closed, so every fire still waiting for a slot
(a saturated budget can hold a whole backlog there for minutes) gets
:class:`~brew_bridge.core.ratelimit.BudgetClosed` and its row goes back to ``pending``
with no attempt counted. Only fires granted a slot, whose requests are on the wire, are
awaited: for ``drain_timeout`` at most and never past :meth:`Dispatcher.stop_by`'s
deadline (the worker's ``shutdown.grace_seconds``). What is still unanswered then is
cancelled and released too; its key fires again next start and the target answers
with the original runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from ..config.sections import DispatcherConfig, RetryConfig
from ..errors import ApiError, AuthError, TargetError, TransportError, UnknownOutcome
from ..events import FireAccepted, Reason
from ..observe.metrics import Metrics
from ..store import DeliveryRow, FiredMark, Outbox
from ..typing import Clock, Target
from .authgate import AuthGate
from .health import OutboxHealth
from .marks import FiredMarks
from .ratelimit import BudgetClosed, RateBudgets
from .resolve import lookup_window, needs_lookup
from .retry import Disposition, counts_as_attempt, dead_letter_reason, next_delay

__all__ = [
    "AuthRefused",
    "DeadLetter",
    "Dispatcher",
    "FireDecision",
    "Fired",
    "RetryLater",
    "decide",
    "error_record",
    "outcome_code",
]

log = structlog.get_logger(__name__)

# Back-off while the outbox fails: the first wait, doubled per failure up to the last.
_FIRST_OUTBOX_BACKOFF = 0.1
_MAX_OUTBOX_BACKOFF = 5.0


# -- the decision, pure ------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    """The target accepted the fire (first time or replay): record its runs."""

    code: str
    instance_id: str | None
    run_ids: tuple[str, ...]
    ref: str | None = None  # FireAccepted.ref, stored with each run


@dataclass(frozen=True)
class RetryLater:
    """Fire again with the same key at ``next_attempt_at``."""

    next_attempt_at: float
    error: dict[str, Any]
    count_attempt: bool


@dataclass(frozen=True)
class DeadLetter:
    """Give up on this delivery: a ``fire`` dead letter."""

    reason: Reason
    code: str | None
    message: str
    error: dict[str, Any]


@dataclass(frozen=True)
class AuthRefused:
    """401 / 403: not the event's fault. Release the row and open the gate."""

    status: int
    code: str
    message: str


FireDecision = Fired | RetryLater | DeadLetter | AuthRefused


def outcome_code(outcome: FireAccepted | BaseException) -> str:
    """The ``code`` label of ``brew_bridge_fires_total`` for one attempt's outcome."""
    if isinstance(outcome, FireAccepted):
        return outcome.code
    if isinstance(outcome, ApiError):
        return outcome.code
    if isinstance(outcome, UnknownOutcome):
        return "UNKNOWN_OUTCOME"
    if isinstance(outcome, TransportError):
        return "TRANSPORT_ERROR"
    return "INTERNAL_ERROR"


def error_record(outcome: BaseException) -> dict[str, Any]:
    """What is stored about a failed attempt: the target's whole envelope, or what went wrong."""
    if isinstance(outcome, ApiError):
        return outcome.envelope()
    return {"status": None, "code": outcome_code(outcome), "message": str(outcome) or repr(outcome)}


def decide(
    outcome: FireAccepted | BaseException,
    *,
    disposition: Disposition | None,
    attempts: int,
    first_attempt_at: float,
    now: float,
    policy: RetryConfig,
    rand: float,
) -> FireDecision:
    """What to do with a delivery after one fire attempt.

    ``disposition``: what the target makes of a failed outcome (None when accepted).
    ``attempts``: attempts counted before this one (the row's ``attempts``).
    ``first_attempt_at``: when the delivery was first tried (its age in delivery).
    ``rand``: uniform in [0, 1), the retry jitter.
    """
    if isinstance(outcome, FireAccepted):
        return Fired(outcome.code, outcome.instance_id, outcome.run_ids, outcome.ref)
    if isinstance(outcome, AuthError):
        return AuthRefused(outcome.status, outcome.code, outcome.message)
    if disposition is None or disposition is Disposition.AUTH:
        status = outcome.status if isinstance(outcome, ApiError) else 0
        return AuthRefused(status, outcome_code(outcome), str(outcome))
    counted = counts_as_attempt(outcome)
    elapsed = max(0.0, now - first_attempt_at)
    delay = next_delay(attempts, elapsed, outcome, disposition, policy, rand)
    error = error_record(outcome)
    if delay is not None:
        return RetryLater(now + delay, error, counted)
    reason = dead_letter_reason(disposition)
    if reason is None:  # pragma: no cover - AUTH is handled above
        return AuthRefused(0, outcome_code(outcome), str(outcome))
    code = outcome.code if isinstance(outcome, ApiError) else outcome_code(outcome)
    if reason is Reason.RETRIES_EXHAUSTED:
        message = f"gave up after {attempts + 1} attempts: {error['message']}"
    else:
        message = str(error["message"])
    return DeadLetter(reason, code, message, error)


@dataclass(frozen=True)
class _CannotTell:
    """A late fire whose earlier outcome cannot be looked up: its dead letter."""

    decision: DeadLetter


# -- the loop ------------------------------------------------------------------------


class Dispatcher:
    """Fires due outbox rows, ``concurrency`` at a time."""

    def __init__(
        self,
        outbox: Outbox,
        target: Target,
        *,
        config: DispatcherConfig,
        retry: RetryConfig,
        metrics: Metrics,
        gate: AuthGate,
        health: OutboxHealth,
        clock: Clock = time.time,
        rand: Callable[[], float] = random.random,
        drain_timeout: float = 30.0,
        lease_seconds: float = 300.0,
        key_window: float = 86400.0,
        key_margin: float = 3600.0,
        budgets: RateBudgets | None = None,
    ) -> None:
        """``budgets``: the rate budgets the target waits on before each fire; closed at
        stop so that fires still waiting for a slot are released at once. Without it a
        stop waits for them too (``drain_timeout`` at most)."""
        self._outbox = outbox
        self._target = target
        self._config = config
        self._retry = retry
        self._metrics = metrics
        self._gate = gate
        self._health = health
        self._clock = clock
        self._rand = rand
        self._drain_timeout = drain_timeout
        self._drain_deadline: float | None = None  # time.monotonic(); see stop_by
        self._budgets = budgets
        self._released_unsent = 0  # fires let go at stop before they were sent
        self._tasks: set[asyncio.Task[None]] = set()
        # Fires not answered yet: what `concurrency` bounds. A fire being recorded holds
        # no slot: its connection is free, and an idle pooled connection costs every
        # request two syscalls in httpcore's pool (measured: ~20 % of the fire path).
        self._unanswered: set[asyncio.Task[None]] = set()
        self._firing: dict[asyncio.Task[None], int] = {}  # fire task -> its delivery id
        self._ready: deque[DeliveryRow] = deque()  # claimed, waiting for a free slot
        self._wakeup = asyncio.Event()
        self._claim_more = True  # False once a claim found nothing due
        self._lease_seconds = lease_seconds
        # A fire first tried longer ago than the target keeps keys (less the margin) is
        # looked up before it fires again (core/resolve.py).
        self._key_window = key_window
        self._key_margin = key_margin
        self._reclaimed_at = time.monotonic()
        # Outcomes whose recording failed, by delivery id: recorded again until stored.
        self._unrecorded: dict[int, tuple[DeliveryRow, FireDecision, float]] = {}
        self._marks = FiredMarks(outbox)  # accepted fires, written in shared transactions
        self._failures = 0  # outbox failures in a row
        self._retry_outbox_at = 0.0  # monotonic: no outbox call before this

    @property
    def in_flight(self) -> int:
        """Rows this dispatcher holds: fires under way, claimed rows about to start, and
        outcomes still to be recorded."""
        return len(self._tasks) + len(self._ready) + len(self._unrecorded)

    def stop_by(self, deadline: float) -> None:
        """When stopped, wait for fires on the wire until ``deadline`` (``time.monotonic()``)
        at most, then cancel them: the process has a grace period to fit in."""
        self._drain_deadline = deadline

    def wake(self) -> None:
        """New rows may be due (ingest stored a batch): look now, not after the idle wait."""
        self._claim_more = True
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire until ``stop`` is set, then let fires in flight finish (or release them)."""
        try:
            recovered = await asyncio.to_thread(self._outbox.recover_firing, self._target.name)
        except Exception as exc:  # leases bring those rows back once the outbox works
            self._outbox_failed("recover_firing", exc)
        else:
            if recovered:
                log.info("rows left firing by a previous run are pending again", rows=recovered)
        stop_waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._fill()
                await self._idle(stop_waiter)
        finally:
            stop_waiter.cancel()
            await self._drain()

    def _outbox_failed(self, operation: str, exc: Exception) -> None:
        self._health.failed(operation, exc)
        self._failures += 1
        delay = min(_MAX_OUTBOX_BACKOFF, _FIRST_OUTBOX_BACKOFF * 2 ** (self._failures - 1))
        self._retry_outbox_at = time.monotonic() + delay

    def _outbox_ok(self) -> None:
        self._failures = 0
        self._health.succeeded()

    def _holding(self) -> set[int]:
        """Every delivery id this dispatcher holds (its lease must not be reclaimed)."""
        return {*self._firing.values(), *(row.id for row in self._ready), *self._unrecorded}

    async def _claim(self, now: float, limit: int) -> list[DeliveryRow] | None:
        """Claim up to ``limit`` due rows in order; None when the outbox failed."""
        try:
            rows = await asyncio.to_thread(
                self._outbox.claim_due,
                now,
                limit,
                ordered=self._config.ordering_key is not None,
                per_route=self._config.ordering_scope == "route",
                lease_seconds=self._lease_seconds,
                target=self._target.name,
            )
        except Exception as exc:
            self._outbox_failed("claim_due", exc)
            return None
        self._outbox_ok()
        return rows

    async def _housekeeping(self, now: float) -> bool:
        """Record what could not be recorded, reclaim expired leases; False while the
        outbox is failing (then nothing else is tried until the back-off has passed)."""
        if time.monotonic() < self._retry_outbox_at:
            return False
        for delivery_id, (row, decision, decided_at) in list(self._unrecorded.items()):
            try:
                await self._apply(row, decision, decided_at, log.bind(delivery_id=delivery_id))
            except Exception as exc:
                self._outbox_failed("record the fire", exc)
                return False
            del self._unrecorded[delivery_id]
            self._outbox_ok()
        if time.monotonic() - self._reclaimed_at >= self._lease_seconds / 2:
            try:
                reclaimed = await asyncio.to_thread(
                    self._outbox.reclaim_expired, now, self._holding(), self._target.name
                )
            except Exception as exc:
                self._outbox_failed("reclaim_expired", exc)
                return False
            self._reclaimed_at = time.monotonic()
            if reclaimed:
                log.warning("firing rows past their lease are pending again", rows=reclaimed)
                self._claim_more = True
        return True

    async def _fill(self) -> None:
        now = self._clock()
        if not await self._housekeeping(now):
            return
        if self._gate.is_open:
            await self._release_ready()
            # One probe through the open gate, only when there is a row to probe with
            # (taking the probe slot for nothing would delay the next real probe).
            try:
                backlog = await asyncio.to_thread(self._outbox.backlog, self._target.name)
            except Exception as exc:
                self._outbox_failed("backlog", exc)
                return
            if not backlog or not self._gate.allow(now):
                return
            probe = await self._claim(now, 1)
            if probe is None:
                return
            self._ready.extend(probe)
            self._start(1)
            return
        concurrency = self._config.concurrency
        free = concurrency - len(self._unanswered)
        if free <= 0:
            return
        if len(self._ready) < free and self._claim_more:
            # Claim ahead, a batch at a time: one transaction per `concurrency` fires
            # instead of one per fire keeps the outbox lock (and its fsyncs) off the
            # path between two fires. Claimed rows are `firing`: a crash sets them back.
            want = 2 * concurrency - len(self._unanswered) - len(self._ready)
            rows = await self._claim(now, want)
            if rows is None:
                return
            self._claim_more = len(rows) == want
            self._ready.extend(rows)
        self._start(concurrency)

    def _start(self, concurrency: int) -> None:
        while self._ready and len(self._unanswered) < concurrency:
            row = self._ready.popleft()
            task = asyncio.create_task(self._fire(row), name=f"fire-{row.id}")
            self._tasks.add(task)
            self._unanswered.add(task)
            self._firing[task] = row.id
            task.add_done_callback(self._done)

    async def _release_ready(self) -> None:
        """Claimed rows not started yet go back to pending (stop, or the gate opened)."""
        while self._ready:
            row = self._ready.popleft()
            try:
                await asyncio.to_thread(self._outbox.release, row.id)
            except Exception as exc:  # still firing: its lease runs out, or the next start
                self._outbox_failed("release", exc)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._unanswered.discard(task)  # a fire cancelled before it started
        self._firing.pop(task, None)
        if not self._ready:
            self._claim_more = True
        self._wakeup.set()

    async def _idle(self, stop_waiter: asyncio.Task[bool]) -> None:
        free = len(self._unanswered) < self._config.concurrency
        backoff = self._retry_outbox_at - time.monotonic()
        if backoff > 0:
            timeout = backoff  # the outbox failed: no call before the back-off has passed
        elif self._gate.is_open:
            timeout = max(0.05, self._gate.seconds_to_probe(self._clock()))
        elif free and (self._ready or self._claim_more):
            return  # a free slot and rows ready (or maybe due): start them now
        else:
            timeout = self._config.idle_poll_seconds
        waiter = asyncio.create_task(self._wakeup.wait())
        try:
            await asyncio.wait(
                {waiter, stop_waiter}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            waiter.cancel()
        self._wakeup.clear()
        self._claim_more = True  # woken or idle long enough: rows may have come due

    def _drain_seconds(self) -> float:
        if self._drain_deadline is None:
            return self._drain_timeout
        return max(0.0, min(self._drain_timeout, self._drain_deadline - time.monotonic()))

    async def _drain(self) -> None:
        if self._budgets is not None:
            # Fires waiting for a slot were not sent: they let go of their rows now
            # (BudgetClosed in _fire) instead of holding the stop until a slot frees.
            self._budgets.close("fire")
        await self._release_ready()
        if self._tasks:
            timeout = self._drain_seconds()
            log.info("waiting for fires in flight", fires=len(self._tasks), at_most_seconds=timeout)
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:  # their rows are released as they are cancelled
                task.cancel()
            if pending:
                log.warning(
                    "fires still unanswered when the stop's wait ended are released; "
                    "their keys fire again next start",
                    fires=len(pending),
                )
                await asyncio.wait(pending)
        await self._marks.flush()
        if self._released_unsent:
            log.info("fires not sent yet are pending again", rows=self._released_unsent)
        if not self._unrecorded:
            return
        self._retry_outbox_at = 0.0  # one last try to record what is not recorded yet
        await self._housekeeping(self._clock())
        if self._unrecorded:  # left firing: the next start fires them again, same keys
            log.error("stopping with fire outcomes not recorded", rows=len(self._unrecorded))

    async def _fire(self, row: DeliveryRow) -> None:
        bound = log.bind(
            idempotency_key=row.idempotency_key,
            route=row.route,
            event_id=row.event_id,
            delivery_id=row.id,
        )
        outcome: FireAccepted | BaseException | _CannotTell
        try:
            outcome = await self._answered(row)
        except BudgetClosed:
            # Stopping before the budget granted a slot: nothing was sent. Pending again,
            # no attempt counted; the same key fires next start.
            try:
                await asyncio.to_thread(self._outbox.release, row.id)
            except Exception as exc:  # still firing: the next start sets it back
                self._outbox_failed("release", exc)
            else:
                self._released_unsent += 1
            return
        except asyncio.CancelledError:
            # Stopping: whether or not it was sent, the same key fires again next time.
            # (If this fails too the row stays firing: the next start sets it back.)
            await asyncio.to_thread(self._outbox.release, row.id)
            raise
        except Exception as exc:
            outcome = exc
        now = self._clock()
        if isinstance(outcome, _CannotTell):
            await self._record(row, outcome.decision, now, bound)
            return
        self._gate.observe(outcome, now)
        code = outcome_code(outcome)
        self._metrics.fires.labels(target=row.target, route=row.route, code=code).inc()
        request_id = outcome.request_id if isinstance(outcome, FireAccepted | ApiError) else None
        bound = bound.bind(request_id=request_id, code=code)
        if not isinstance(outcome, FireAccepted | TargetError):
            bound.error("unexpected error while firing", exc_info=outcome)
        decision = decide(
            outcome,
            disposition=None
            if isinstance(outcome, FireAccepted)
            else self._target.classify(outcome, row),
            attempts=row.attempts,
            first_attempt_at=row.first_attempt_at if row.first_attempt_at is not None else now,
            now=now,
            policy=self._retry,
            rand=self._rand(),
        )
        await self._record(row, decision, now, bound)

    async def _record(
        self, row: DeliveryRow, decision: FireDecision, now: float, bound: FilteringBoundLogger
    ) -> None:
        try:
            await self._apply(row, decision, now, bound)
        except Exception as exc:
            # Kept (the run ids above all) and recorded again until stored; the row stays
            # firing and held meanwhile, so its ordering key waits and nothing re-fires.
            self._unrecorded[row.id] = (row, decision, now)
            self._outbox_failed("record the fire", exc)
            return
        self._outbox_ok()

    async def _answered(self, row: DeliveryRow) -> FireAccepted | _CannotTell:
        """:meth:`_send`, then the fire's slot is free for the next row."""
        try:
            return await self._send(row)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._unanswered.discard(task)
            self._wakeup.set()

    async def _send(self, row: DeliveryRow) -> FireAccepted | _CannotTell:
        """Fire the row; first, when it was first tried longer ago than the target keeps
        keys, look for the runs an earlier attempt may have started (core/resolve.py)."""
        now = self._clock()
        if not needs_lookup(row, now, key_window=self._key_window, margin=self._key_margin):
            return await self._target.fire(row)
        since, until = lookup_window(row, now)
        found = await self._target.find_runs(row, since, until)
        if found is None:
            hours = (now - (row.first_attempt_at or now)) / 3600
            message = (
                f"first sent {hours:.1f} h ago, longer than {self._target.title} keeps "
                "Idempotency-Keys, and its runs cannot be looked up (no recipient, or too "
                "many candidates): it may have gone out already. If it did not, "
                "`brew-bridge dlq redrive` fires it"
            )
            error = {"status": None, "code": "OUTCOME_UNKNOWN", "message": message}
            return _CannotTell(
                DeadLetter(Reason.OUTCOME_UNKNOWN, "OUTCOME_UNKNOWN", message, error)
            )
        ours = [
            run_id for run_id in found if await asyncio.to_thread(self._outbox.run, run_id) is None
        ]
        if ours:
            log.warning(
                "late fire: runs an earlier attempt started were found; adopted, not fired",
                delivery_id=row.id,
                run_ids=ours,
            )
            return FireAccepted(code="ADOPTED", instance_id=None, run_ids=tuple(ours))
        return await self._target.fire(row)

    async def _apply(
        self, row: DeliveryRow, decision: FireDecision, now: float, bound: FilteringBoundLogger
    ) -> None:
        route = row.route
        if isinstance(decision, Fired):
            await self._marks.record(
                FiredMark(
                    row.id,
                    decision.instance_id,
                    tuple(decision.run_ids),
                    decision.code,
                    now,
                    decision.ref,
                )
            )
            labels = {"target": row.target, "route": route}
            self._metrics.runs_started.labels(**labels).inc(len(decision.run_ids))
            self._metrics.event_to_fire.labels(**labels).observe(max(0.0, now - row.created_at))
            bound.info(
                "fired",
                instance_id=decision.instance_id,
                run_ids=list(decision.run_ids),
                attempt=row.attempts + 1,
            )
        elif isinstance(decision, RetryLater):
            await asyncio.to_thread(
                self._outbox.mark_retry,
                row.id,
                next_attempt_at=decision.next_attempt_at,
                error=decision.error,
                now=now,
                count_attempt=decision.count_attempt,
            )
            reason = str(decision.error.get("code") or "unknown")
            self._metrics.fire_retries.labels(target=row.target, route=route, reason=reason).inc()
            bound.warning(
                "fire will be retried",
                attempt=row.attempts + 1,
                retry_in_seconds=round(decision.next_attempt_at - now, 3),
                error=decision.error.get("message"),
            )
        elif isinstance(decision, DeadLetter):
            dead_id = await asyncio.to_thread(
                self._outbox.mark_dead,
                row.id,
                reason=decision.reason,
                code=decision.code,
                message=decision.message,
                error=decision.error,
                now=now,
            )
            self._metrics.dead_letters.labels(
                stage="fire", route=route, reason=str(decision.reason)
            ).inc()
            bound.warning(
                "fire dead-lettered",
                reason=str(decision.reason),
                dead_letter_id=dead_id,
                error=decision.message,
            )
        else:
            # Whatever made it a refusal (an AuthError opened the gate already), the gate
            # must be open now, or the released row would be claimed again at once.
            if not self._gate.is_open:
                self._gate.refused(now, decision.status, decision.code, decision.message)
            await asyncio.to_thread(self._outbox.release, row.id)
