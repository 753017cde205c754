"""Rate budgets: stay under Brew's per-key, per-route limits instead of meeting 429s.

Brew counts requests per key and route in a rolling window (defaults: fire 60/min,
run reads 100/min, trigger reads 100/min) and reports the shared truth on every
answer: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``
(epoch seconds). Every replica using the key can read it.

:class:`SlidingWindow` is the pure core (``now`` passed in, no I/O). It keeps a log of
the times our own requests occupy the window and grants a request only while fewer
than ``limit`` are in it, so no window of ``window`` seconds ever holds more than
``limit`` grants — including the first one (a token bucket that starts full lets
about twice the limit through in its first window).

Two refinements keep the log honest about what the *server* counts:

* **Answer time, not grant time.** Brew counts a request when it receives it, which
  is after we granted it. When the answer comes (:meth:`SlidingWindow.settle`), the
  grant's slot moves to the answer time — never earlier than the
  server's receipt — so a slow first request cannot push two windows' worth of
  requests into one of the server's windows.
* **Other replicas.** :meth:`SlidingWindow.observe` compares the server's count
  (``limit - remaining``) with ours as of the answered request; the difference is other
  replicas' use of the shared key. It takes room in the window until the next answer
  replaces it, or until ``X-RateLimit-Reset`` (one window at most) makes it stale — then
  one probe at a time until fresh numbers come back. While others are seen, the free
  slots are split in proportion to use (rounded down, so two replicas seldom both take
  the last one) and our share is spread evenly over the window instead of sent as a
  burst, so every answer is fresh news. Answers overtaken by a later request's answer
  are ignored. A server limit below ours lowers ours; a 429 frees its slot (Brew did not
  count it) and blocks the policy until its ``Retry-After``.

  In a model of Brew's limiter (tests/client/test_ratelimit.py), two or three
  replicas each asking for the whole budget get well under 1 % 429s at 60 per window
  (about 50 % without the correction) and still use ~98 % of the budget; one replica
  alone uses all of it with no 429. Replicas that start while the others fill the
  window learn of them only from 429s, which echo window after window (~90 % use, in
  the model at 0.5 s apart): the shared window below has none.

:class:`RateBudgets` is the async face: one window per policy (``fire``,
``run_read``, ``trigger_read``); :meth:`RateBudgets.acquire` waits (cancellably, first
come first served per policy) and records ``rate_budget_wait``;
:meth:`RateBudgets.observe` is called with every answer (or with no headers when
there was none) and records ``rate_budget_remaining``. The wait for a budget is not a
retry attempt: callers acquire before each send and never count the wait.

**A shared window.** With many replicas on one key the headers are news of the past
(each answer is one round trip old) and replicas split the free slots rounding down,
so some stay unused. A :class:`SharedWindow` (``rate_limits.shared``: the same log in
Redis, :mod:`brew_bridge.shared_limit`) is the exact count instead: every grant of the
local window must also take a slot there, which moves to the answer's time as the local
one does (or is freed), and while it answers the local window stops learning others'
use from the headers (the shared count has it). When it fails (Redis down, slower than
``shared_timeout``), delivery goes on: the grant stands on the local window alone, which
learns from the headers again, ``rate_budget_shared_errors`` counts each such grant, one
warning is logged per outage, and the shared window is asked again one window later
(grants made meanwhile are not in it: for that window the headers' correction is all
there is).

**Stopping.** :meth:`RateBudgets.close` closes a policy: every caller still waiting for
one of its slots, and every later one, gets :class:`BudgetClosed` at once instead of a
slot. Nothing was sent for such a caller (callers send only after a grant), so a fire
waiting on a saturated budget can be let go at shutdown; grants already made are
untouched, their requests are on the wire.

**Clocks.** The windows run on a monotonic clock (``time.monotonic``), never on the
wall clock: a backward NTP step would otherwise keep every slot "in the future" and
stall the policy for the size of the step, and a forward one would expire every slot at
once and let a full window's worth through in a burst. The only epoch value is
``X-RateLimit-Reset``; :meth:`RateBudgets.observe` turns it into the windows' time once,
with the wall clock read at the answer. A 429's wait (``Retry-After``, or the body's
``retryAfter``) is capped as the retry policy caps it (``retry_after_cap_seconds``), so
one absurd header cannot freeze a policy for a day.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from ..config.sections import RateLimit, RateLimitsConfig, RetryConfig
from ..observe.metrics import Metrics

__all__ = [
    "POLICIES",
    "BudgetClosed",
    "RateBudgets",
    "Reservation",
    "SharedWindow",
    "SlidingWindow",
    "parse_rate_headers",
]

POLICIES = ("fire", "run_read", "trigger_read")

# Never ask a caller to sleep for less than this: a float edge must not become a busy loop.
_MIN_WAIT = 0.001

# The longest a 429 blocks a policy unless told otherwise: the retry policy's own cap.
_RETRY_AFTER_CAP: float = RetryConfig().retry_after_cap_seconds

# A shared window slower than this to answer counts as failed: a grant must not hang on it.
_SHARED_TIMEOUT = 1.0

log = structlog.get_logger(__name__)


class SlidingWindow:
    """A sliding-window log limiter: at most ``limit`` grants in any ``window`` seconds.

    Pure: every method takes ``now``, seconds on one monotonic timeline (``reset`` and
    ``until`` are on it too; :class:`RateBudgets` converts the server's epoch reset).
    Not thread-safe (asyncio only).
    Used alone (only :meth:`try_acquire`) it is a plain sliding-window log; fed with
    :meth:`settle` and :meth:`observe` it also tracks what the server counts.
    """

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if not window > 0:
            raise ValueError(f"window must be > 0 seconds, got {window}")
        self.limit = limit
        self.window = float(window)
        # Our own requests as (time they occupy the window from, grant number), sorted.
        self._slots: list[tuple[float, int]] = []
        # Grants not yet answered, oldest first; bounded so a caller that never settles
        # cannot grow it without end.
        self._unsettled: deque[tuple[float, int]] = deque(maxlen=4 * limit)
        self._granted = 0
        self._last_grant_at = -math.inf
        self._answering: int | None = None  # grant the answer being observed belongs to
        self._observed_upto = 0  # newest grant whose answer updated the server's picture
        self._server_limit: int | None = None
        self._others = 0  # other replicas' requests in the server's window, last we heard
        self._own_cap: int | None = None  # our share of the window while others are using it
        self._fresh_until: float | None = None  # None: the server never sent a count
        self._blocked_until = 0.0

    @property
    def effective_limit(self) -> int:
        """Our limit, lowered to the server's ``X-RateLimit-Limit`` when that is smaller."""
        if self._server_limit is None:
            return self.limit
        return min(self.limit, self._server_limit)

    def _prune(self, now: float) -> None:
        # A slot at s occupies [s, s + window): gone once s <= now - window.
        cut = bisect.bisect_right(self._slots, (now - self.window, math.inf))
        del self._slots[:cut]

    def _stale(self, now: float) -> bool:
        return self._fresh_until is not None and now >= self._fresh_until

    def _cap(self, now: float) -> tuple[int, int]:
        """(how many of our own slots may be taken now, others' slots as last reported)."""
        limit = self.effective_limit
        if self._stale(now):
            return limit, 0
        cap = limit - self._others
        if self._own_cap is not None:
            cap = min(cap, self._own_cap)
        return cap, self._others

    def used(self, now: float) -> int:
        """Slots taken now: our own plus other replicas' as last reported."""
        self._prune(now)
        return len(self._slots) + self._cap(now)[1]

    def remaining(self, now: float) -> int:
        """Grants left now (0 while a 429 blocks the policy)."""
        if now < self._blocked_until:
            return 0
        self._prune(now)
        return max(0, self._cap(now)[0] - len(self._slots))

    def try_acquire(self, now: float) -> float:
        """Take a slot: ``0.0`` if granted, else the seconds to wait before asking again."""
        if now < self._blocked_until:
            return max(self._blocked_until - now, _MIN_WAIT)
        self._prune(now)
        own = len(self._slots)
        cap, others = self._cap(now)
        if others:
            # Sharing the key: spread our share over the window instead of bursting it,
            # so every answer is fresh news and replicas rarely race for the last slot.
            next_at = self._last_grant_at + self.window / max(cap, 1)
            if self._fresh_until is not None:
                next_at = min(next_at, self._fresh_until)  # stale news: pacing stops
            if now < next_at:
                return max(next_at - now, _MIN_WAIT)
        elif self._stale(now) and any(g > now - self.window for g, _ in self._unsettled):
            # What the server last said is older than its window: others may have come
            # and gone. One probe at a time until an answer brings fresh numbers.
            return max(min(self.window / self.effective_limit, 1.0), _MIN_WAIT)
        if own < cap:
            self._granted += 1
            self._last_grant_at = now
            bisect.insort(self._slots, (now, self._granted))
            self._unsettled.append((now, self._granted))
            return 0.0
        # Earliest time enough of our own slots expire, or the others' count goes stale.
        candidates: list[float] = []
        frees = own - cap + 1
        if frees <= own:  # frees >= 1 here, else we would have granted
            candidates.append(self._slots[frees - 1][0] + self.window)
        if others and self._fresh_until is not None:
            candidates.append(self._fresh_until)
        wait = min(candidates) - now if candidates else self.window
        return max(wait, _MIN_WAIT)

    @property
    def last_grant(self) -> int:
        """Number of the latest grant, to hand back to :meth:`settle` with its answer."""
        return self._granted

    def settle(self, now: float, *, grant: int | None = None, counted: bool = True) -> None:
        """The answer to a grant came back (or its final failure): ``grant`` is the
        :attr:`last_grant` read right after it was granted (default: the oldest one
        still unanswered).

        Its slot moves from the grant time to ``now``: the server received the request
        at some moment in between, so counting it from ``now`` can only over-count.
        ``counted=False`` (a 429: the server refused it without counting it) frees it.
        The :meth:`observe` that follows reads the answer as of this grant.
        """
        entry: tuple[float, int] | None = None
        if grant is None:
            if self._unsettled:
                entry = self._unsettled.popleft()
        else:
            for candidate in self._unsettled:
                if candidate[1] == grant:
                    entry = candidate
                    self._unsettled.remove(candidate)
                    break
        if entry is None:
            self._answering = None
            return
        i = bisect.bisect_left(self._slots, entry)
        if i < len(self._slots) and self._slots[i] == entry:
            del self._slots[i]
        if counted:
            bisect.insort(self._slots, (now, entry[1]))
        self._answering = entry[1]

    def observe(
        self,
        now: float,
        *,
        limit: int | None = None,
        remaining: int | None = None,
        reset: float | None = None,
    ) -> None:
        """Correct the window from a server answer's ``X-RateLimit-*`` values.

        What the server counted beyond our own requests (those granted up to the one
        this answer is for) is other replicas' use of the shared key. That count holds
        until the next answer replaces it, or until ``reset`` (at most one window)
        makes it stale.
        """
        if limit is not None and limit >= 1:
            self._server_limit = limit
        if remaining is None or remaining < 0:
            return
        answered = self._answering if self._answering is not None else self._granted
        if answered < self._observed_upto:
            return  # overtaken by the answer to a later request: older news
        self._observed_upto = answered
        server_limit = limit if limit is not None and limit >= 1 else self.effective_limit
        used_by_server = max(0, server_limit - remaining)
        self._prune(now)
        counted = sum(1 for _, number in self._slots if number <= answered)
        in_flight = len(self._slots) - counted  # granted after it: not in ``remaining`` yet
        others = max(0, used_by_server - counted)
        self._others = others
        # Free slots are split with the others in proportion to current use, rounded
        # down:
        # replicas that all grab every free slot at once collide on the last ones.
        share = counted / (counted + others) if others else 1.0
        free = max(0, remaining - in_flight)
        self._own_cap = counted + in_flight + math.floor(free * share)
        horizon = now + self.window
        self._fresh_until = reset if reset is not None and now < reset <= horizon else horizon
        self._answering = None

    def unreported(self) -> None:
        """A success came without a count (the server stopped reporting): trust only our
        own log from now on, rather than probing one request at a time for ever."""
        self._others = 0
        self._own_cap = None
        self._fresh_until = None

    def block_until(self, until: float) -> None:
        """A 429: grant nothing before ``until`` (the server's Retry-After)."""
        self._blocked_until = max(self._blocked_until, until)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:  # an HTTP-date Retry-After is not parsed, like the official SDK
        return None
    return value if math.isfinite(value) else None


def parse_rate_headers(
    headers: Mapping[str, str],
) -> tuple[int | None, int | None, float | None, float | None]:
    """``(limit, remaining, reset, retry_after)`` from a response's headers, any case."""
    lower = {k.lower(): v for k, v in headers.items()}
    return (
        _int_header(lower, "x-ratelimit-limit"),
        _int_header(lower, "x-ratelimit-remaining"),
        _float_header(lower, "x-ratelimit-reset"),
        _float_header(lower, "retry-after"),
    )


class SharedWindow(Protocol):
    """A window every replica using the key takes its slots from (an edge: Redis).

    The shared twin of :class:`SlidingWindow`'s log: a slot is taken for a grant, then
    moved to its answer's time or dropped (:meth:`settle`). Both raise when they cannot.
    """

    async def take(self, policy: str, limit: int, window: float, grant: int) -> float:
        """Take a slot of ``policy`` for ``grant`` (at most ``limit`` in any ``window``
        seconds): ``0.0`` if taken, else the seconds until one frees."""
        ...

    async def settle(self, policy: str, grant: int, window: float, *, counted: bool) -> None:
        """``grant``'s answer came: its slot counts from now (``counted``) or is freed."""
        ...

    def describe(self) -> str:
        """Where it is, for logs: no password."""
        ...


class BudgetClosed(asyncio.CancelledError):
    """The policy was closed (the process is stopping) before this caller got a slot:
    no slot was taken and nothing was sent.

    A :class:`asyncio.CancelledError`, so that code between the budget and whoever
    stops (a target's ``except Exception`` translating errors) lets it through as it
    would a cancellation; whoever closed the budget catches it by this name.
    """

    def __init__(self, policy: str) -> None:
        super().__init__(f"the {policy!r} rate budget is closed: stopping")
        self.policy = policy


@dataclass(frozen=True)
class Reservation:
    """One slot taken by :meth:`RateBudgets.reserve`: hand ``grant`` back to ``observe``."""

    policy: str
    grant: int
    waited: float


class RateBudgets:
    """One :class:`SlidingWindow` per policy, with an async, cancellable wait."""

    def __init__(
        self,
        config: RateLimitsConfig,
        metrics: Metrics | None = None,
        *,
        target: str = "brew",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retry_after_cap: float = _RETRY_AFTER_CAP,
        shared: SharedWindow | None = None,
        shared_timeout: float = _SHARED_TIMEOUT,
    ) -> None:
        """``clock`` is monotonic (the windows' time), ``wall`` is epoch seconds (only
        to read ``X-RateLimit-Reset`` when :meth:`observe` is given no wall time);
        ``retry_after_cap`` bounds how long a 429 blocks a policy (pass the config's
        ``brew.retry.retry_after_cap_seconds``); ``shared`` is the window every replica
        takes its slots from (``rate_limits.shared``), ``shared_timeout`` the longest
        one of its answers may take before it counts as failed."""
        if not retry_after_cap > 0:
            raise ValueError(f"retry_after_cap must be > 0 seconds, got {retry_after_cap}")
        limits: dict[str, RateLimit] = {
            "fire": config.fire,
            "run_read": config.run_read,
            "trigger_read": config.trigger_read,
        }
        self._windows = {p: SlidingWindow(rl.limit, rl.window_seconds) for p, rl in limits.items()}
        self._locks = {p: asyncio.Lock() for p in POLICIES}
        self._changed = {p: asyncio.Event() for p in POLICIES}
        self._closed: set[str] = set()
        self._metrics = metrics
        self._target = target
        self._clock = clock
        self._wall = wall
        self._retry_after_cap = float(retry_after_cap)
        self._shared = shared
        self._shared_timeout = shared_timeout
        # Per policy: until when the shared window is not asked (it failed), on now()'s line.
        self._shared_down_until: dict[str, float] = {}
        # Per policy: grants holding a slot in the shared window, until their answer.
        self._in_shared: dict[str, dict[int, None]] = {p: {} for p in POLICIES}
        self._settling: set[asyncio.Task[None]] = set()  # settles on their way to it
        # The windows' timeline is the monotonic clock shifted once, here, so that its
        # times read as epoch seconds at the start (logs, tests). A later wall-clock step
        # moves nothing; the two drift apart, which is why ``now()`` is the only way in.
        self._offset = wall() - clock()

    def now(self) -> float:
        """The windows' time now (monotonic): what to pass to a :meth:`window`'s methods."""
        return self._clock() + self._offset

    def window(self, policy: str) -> SlidingWindow:
        """The policy's window (read-only use: tests, stats; its time is :meth:`now`)."""
        try:
            return self._windows[policy]
        except KeyError:
            raise ValueError(
                f"unknown rate policy {policy!r}; expected one of {', '.join(POLICIES)}"
            ) from None

    async def acquire(self, policy: str) -> float:
        """Wait until the policy has a free slot and take it; return the seconds waited.

        Waiters on one policy are served in arrival order. Cancelling the caller
        cancels the wait and takes no slot; so does :meth:`close` (:class:`BudgetClosed`).
        """
        return (await self.reserve(policy)).waited

    async def reserve(self, policy: str) -> Reservation:
        """Like :meth:`acquire`, and say which grant it was, to pass to :meth:`observe`."""
        window = self.window(policy)
        changed = self._changed[policy]
        start = self.now()
        if policy in self._closed:
            raise BudgetClosed(policy)
        async with self._locks[policy]:
            while True:
                # Checked before every grant: the waiter that holds the lock wakes on
                # close(), and each one queued behind it sees the switch as it gets in.
                if policy in self._closed:
                    raise BudgetClosed(policy)
                wait = window.try_acquire(self.now())
                if wait == 0.0:
                    wait = await self._take_shared(policy, window)
                    if wait == 0.0:
                        break
                    # The shared window is full: give the local slot back, nothing is sent.
                    window.settle(self.now(), grant=window.last_grant, counted=False)
                changed.clear()
                try:
                    # Woken early when an answer changes the picture (e.g. a new limit).
                    async with asyncio.timeout(wait):
                        await changed.wait()
                except TimeoutError:
                    pass
        now = self.now()
        waited = max(0.0, now - start)
        if self._metrics is not None:
            self._metrics.rate_budget_wait.labels(self._target, policy).observe(waited)
            self._metrics.rate_budget_remaining.labels(self._target, policy).set(
                window.remaining(now)
            )
        return Reservation(policy, window.last_grant, waited)

    def sharing(self, policy: str) -> bool:
        """Whether grants of ``policy`` take their slots in the shared window now (it is
        configured and did not fail in the last window)."""
        return self._shared is not None and self.now() >= self._shared_down_until.get(policy, 0.0)

    async def _take_shared(self, policy: str, window: SlidingWindow) -> float:
        """A slot in the shared window (0.0), or the seconds until it has one; 0.0 too
        while it is failing: the local window's grant stands alone."""
        shared = self._shared
        if shared is None:
            return 0.0
        if not self.sharing(policy):
            self._granted_alone(policy)
            return 0.0
        grant = window.last_grant
        try:
            async with asyncio.timeout(self._shared_timeout):
                wait = await shared.take(policy, window.effective_limit, window.window, grant)
        except Exception as exc:
            self._shared_failed(policy, exc)
            self._granted_alone(policy)
            return 0.0
        if wait <= 0.0:
            held = self._in_shared[policy]
            held[grant] = None
            if len(held) > 4 * window.limit:  # answers that never came: bounded, as locally
                del held[next(iter(held))]
        if self._shared_down_until.pop(policy, None) is not None:
            log.info(
                "shared rate limiter answering again",
                target=self._target,
                policy=policy,
                shared=shared.describe(),
            )
        return max(wait, 0.0)

    def _shared_failed(self, policy: str, exc: Exception) -> None:
        """The shared window failed: not asked again for one window; warned once."""
        window = self.window(policy)
        if policy not in self._shared_down_until and self._shared is not None:
            # The type only: a driver's message may quote the URL, password included.
            log.warning(
                "shared rate limiter failed: pacing from the local window",
                target=self._target,
                policy=policy,
                shared=self._shared.describe(),
                error=type(exc).__name__,
                retry_in_seconds=window.window,
            )
        self._shared_down_until[policy] = self.now() + window.window

    def _settle_shared(self, policy: str, grant: int | None, *, counted: bool) -> None:
        """Move ``grant``'s shared slot to now (or free it), in the background: an
        answer is handled at once and the settle reaches Redis a moment later."""
        shared = self._shared
        if shared is None or grant is None or grant not in self._in_shared[policy]:
            return
        del self._in_shared[policy][grant]
        window = self.window(policy)

        async def settle() -> None:
            try:
                async with asyncio.timeout(self._shared_timeout):
                    await shared.settle(policy, grant, window.window, counted=counted)
            except Exception as exc:
                self._shared_failed(policy, exc)

        task = asyncio.get_running_loop().create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def settled(self) -> None:
        """Wait for the settles still on their way to the shared window (before closing it)."""
        await asyncio.gather(*self._settling, return_exceptions=True)

    def _granted_alone(self, policy: str) -> None:
        if self._metrics is not None:
            self._metrics.rate_budget_shared_errors.labels(self._target, policy).inc()

    def close(self, policy: str) -> None:
        """Grant no more slots of ``policy``: every caller waiting for one, and every later
        one, raises :class:`BudgetClosed` now. Grants already made are not touched."""
        self.window(policy)  # an unknown policy is an error here too
        self._closed.add(policy)
        self._changed[policy].set()

    def closed(self, policy: str) -> bool:
        """Whether :meth:`close` was called for ``policy``."""
        return policy in self._closed

    def observe(
        self,
        policy: str,
        headers: Mapping[str, str] | None,
        wall_now: float | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        grant: int | None = None,
        sent: bool = True,
    ) -> None:
        """Record the answer to one acquired request (``headers=None``: no answer came).

        Settles the request's slot (``grant`` from :meth:`reserve`; without it, the
        oldest unanswered one), applies the ``X-RateLimit-*`` correction and, for a 429
        (``status``), blocks the policy for ``retry_after`` (the client passes the
        body's ``retryAfter`` first) or else the ``Retry-After`` header, at most
        ``retry_after_cap`` seconds. ``sent=False`` (the request never left: a connect
        error) gives its slot back.

        ``wall_now`` is the caller's wall clock (epoch seconds) as the answer came,
        default ``wall()``: used only to turn the epoch ``X-RateLimit-Reset`` into the
        windows' monotonic time. The slot itself is settled at :meth:`now`.
        """
        window = self.window(policy)
        now = self.now()
        counted = sent and status != 429
        window.settle(now, grant=grant, counted=counted)
        self._settle_shared(policy, grant, counted=counted)
        remaining: int | None = None
        reset: float | None = None
        if headers is not None:
            limit, remaining, reset_epoch, header_retry_after = parse_rate_headers(headers)
            if reset_epoch is not None:
                # The one epoch value: converted once, as a delay from the answer.
                wall = self._wall() if wall_now is None else wall_now
                reset = now + (reset_epoch - wall)
            if self.sharing(policy):
                # Others' use is in the shared count: the headers' would be counted twice.
                window.observe(now, limit=limit)
            else:
                if remaining is None and status is not None and 200 <= status < 300:
                    window.unreported()
                window.observe(now, limit=limit, remaining=remaining, reset=reset)
            if retry_after is None:
                retry_after = header_retry_after
        if status == 429:
            if retry_after is not None:
                window.block_until(now + min(max(retry_after, 0.0), self._retry_after_cap))
            elif reset is not None and reset > now:
                window.block_until(min(reset, now + window.window, now + self._retry_after_cap))
            else:
                window.block_until(now + min(1.0, window.window))
        self._changed[policy].set()
        if self._metrics is not None:
            left = remaining if remaining is not None else window.remaining(now)
            self._metrics.rate_budget_remaining.labels(self._target, policy).set(left)
