"""Rate budgets: the pure sliding window, the header correction, the async wait."""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brew_bridge.config import RateLimit, RateLimitsConfig, RetryConfig
from brew_bridge.core.ratelimit import RateBudgets, SlidingWindow, parse_rate_headers
from brew_bridge.observe.metrics import Metrics
from brew_bridge.sim.brew.ratewindow import RollingWindow
from brew_bridge.testing.windows import most_in_window


def test_first_window_is_not_a_double_burst() -> None:
    w = SlidingWindow(10, 60.0)
    granted = [t for t in (i * 0.5 for i in range(240)) if w.try_acquire(t) == 0.0]
    # 0..119.5 s: exactly 10 per window, the first window included.
    assert len(granted) == 20
    assert granted[:10] == [i * 0.5 for i in range(10)]
    assert most_in_window(granted, 60.0) == 10


def test_wait_is_until_the_oldest_slot_leaves() -> None:
    w = SlidingWindow(2, 10.0)
    assert w.try_acquire(0.0) == 0.0
    assert w.try_acquire(3.0) == 0.0
    assert w.try_acquire(4.0) == pytest.approx(6.0)
    assert w.try_acquire(10.0) == 0.0  # the slot at 0 left at 10
    assert w.remaining(10.0) == 0
    assert w.remaining(13.0) == 1


@given(
    limit=st.integers(min_value=1, max_value=20),
    window=st.floats(min_value=0.5, max_value=100.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=300),
)
def test_no_window_ever_holds_more_than_limit(limit: int, window: float, gaps: list[float]) -> None:
    w = SlidingWindow(limit, window)
    now, granted = 1000.0, []
    for gap in gaps:
        now += gap
        wait = w.try_acquire(now)
        if wait == 0.0:
            granted.append(now)
        else:
            assert wait > 0.0
    assert most_in_window(granted, window) <= limit


@given(
    limit=st.integers(min_value=1, max_value=10),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=200),
)
def test_waiting_as_told_is_always_granted_eventually(limit: int, gaps: list[float]) -> None:
    w = SlidingWindow(limit, 5.0)
    now = 0.0
    for gap in gaps:
        now += gap
        for _ in range(limit + 2):  # told waits converge: never an endless refusal
            wait = w.try_acquire(now)
            if wait == 0.0:
                break
            now += wait
        else:
            pytest.fail("waiting the advised time never got a slot")


def test_settle_moves_the_slot_to_the_answer_time() -> None:
    w = SlidingWindow(1, 10.0)
    assert w.try_acquire(0.0) == 0.0
    w.settle(0.8)  # answered 0.8 s later: Brew saw it somewhere in [0, 0.8]
    assert w.try_acquire(10.0) == pytest.approx(0.8)
    assert w.try_acquire(10.8) == 0.0


def test_settle_by_grant_number_and_after_expiry() -> None:
    w = SlidingWindow(2, 1.0)
    assert w.try_acquire(0.0) == 0.0
    first = w.last_grant
    assert w.try_acquire(0.1) == 0.0
    w.settle(0.2, grant=w.last_grant)  # the second answered first
    w.settle(5.0, grant=first)  # a 5 s hang: its slot is back at the answer time
    assert w.try_acquire(5.5) == 0.0  # one slot free (the second's left at 1.2)
    assert w.try_acquire(5.5) == pytest.approx(0.5)
    w.settle(6.0, grant=12345)  # unknown grant: ignored
    assert w.remaining(6.0) == 1


def test_a_429_frees_its_slot() -> None:
    w = SlidingWindow(1, 60.0)
    assert w.try_acquire(0.0) == 0.0
    w.settle(0.1, grant=w.last_grant, counted=False)
    assert w.try_acquire(0.2) == 0.0


def test_other_replicas_use_takes_room_until_fresher_news() -> None:
    w = SlidingWindow(10, 60.0)
    for t in (0.0, 1.0):
        assert w.try_acquire(t) == 0.0
        w.settle(t + 0.1, grant=w.last_grant)
    # The server counted 5: three are another replica's.
    w.observe(1.1, limit=10, remaining=5, reset=61.0)
    assert w.used(1.1) == 5
    # 5 free, split by use: we have 2 of the 5 used, so we may take floor(5 * 2/5) = 2 more.
    assert w.remaining(1.1) == 2
    # ... spread over the window (our share is 4 per 60 s), not in one burst.
    assert w.try_acquire(1.2) == pytest.approx(15.0 - 0.2)
    assert w.try_acquire(16.0) == 0.0
    w.settle(16.1, grant=w.last_grant)
    # Fresh news: the other replica went quiet; the whole rest is ours.
    w.observe(16.1, limit=10, remaining=7, reset=76.0)
    assert w.used(16.1) == 3
    assert w.remaining(16.1) == 7
    assert w.try_acquire(16.2) == 0.0
    assert w.try_acquire(16.2) == 0.0  # no pacing when alone


def test_an_overtaken_answer_is_old_news() -> None:
    w = SlidingWindow(10, 60.0)
    assert w.try_acquire(0.0) == 0.0
    early = w.last_grant
    assert w.try_acquire(0.0) == 0.0
    w.settle(0.2, grant=w.last_grant)
    w.observe(0.2, limit=10, remaining=2, reset=60.0)  # 8 used: 6 are others'
    w.settle(0.3, grant=early)
    w.observe(0.3, limit=10, remaining=9, reset=60.0)  # received before: stale
    assert w.used(0.3) == 8


def test_stale_numbers_mean_one_probe_at_a_time() -> None:
    w = SlidingWindow(10, 10.0)
    assert w.try_acquire(0.0) == 0.0
    w.settle(0.1, grant=w.last_grant)
    w.observe(0.1, limit=10, remaining=0, reset=5.0)  # full until 5
    assert w.try_acquire(1.0) == pytest.approx(4.0)
    # Past the reset: others may be gone, but one probe at a time until we hear back.
    assert w.try_acquire(5.0) == 0.0
    probe = w.last_grant
    assert w.try_acquire(5.0) > 0.0
    w.settle(5.1, grant=probe)
    w.observe(5.1, limit=10, remaining=8, reset=15.1)
    assert w.try_acquire(5.2) == 0.0
    assert w.try_acquire(5.2) == 0.0


def test_a_server_that_stops_reporting_leaves_our_own_log() -> None:
    w = SlidingWindow(10, 10.0)
    assert w.try_acquire(0.0) == 0.0
    w.settle(0.1, grant=w.last_grant)
    w.observe(0.1, limit=10, remaining=9, reset=10.0)
    w.unreported()
    # Past the old reset: no probing one at a time, just the local window.
    assert [w.try_acquire(11.0) for _ in range(3)] == [0.0, 0.0, 0.0]


async def test_a_success_without_headers_means_local_only() -> None:
    budgets = small_budgets()
    now = budgets.now()
    budgets.window("run_read").observe(now, limit=100, remaining=0, reset=None)
    budgets.observe("run_read", {"x-request-id": "req_1"}, time.time(), status=200)
    assert budgets.window("run_read").remaining(budgets.now()) == 100


def test_reset_is_clamped_to_one_window() -> None:
    w = SlidingWindow(5, 10.0)
    w.observe(0.0, limit=5, remaining=0, reset=10_000.0)
    assert w.try_acquire(0.0) == pytest.approx(10.0)
    w.observe(0.0, limit=5, remaining=0, reset=None)
    assert w.try_acquire(0.0) == pytest.approx(10.0)


def test_server_limit_below_ours_wins() -> None:
    w = SlidingWindow(100, 60.0)
    w.observe(0.0, limit=3, remaining=3, reset=None)
    assert w.effective_limit == 3
    assert [w.try_acquire(0.0) for _ in range(4)][-1] > 0.0
    w.observe(0.0, limit=500, remaining=None)
    assert w.effective_limit == 100  # a bigger server limit never raises ours


def test_block_until_refuses_everything() -> None:
    w = SlidingWindow(100, 60.0)
    w.block_until(12.0)
    assert w.try_acquire(2.0) == pytest.approx(10.0)
    assert w.remaining(2.0) == 0
    assert w.try_acquire(12.0) == 0.0


def test_parse_rate_headers_any_case_and_bad_values() -> None:
    assert parse_rate_headers(
        {
            "X-RateLimit-Limit": "60",
            "x-ratelimit-remaining": "59",
            "X-RATELIMIT-RESET": "1712592360",
            "Retry-After": "2.5",
        }
    ) == (60, 59, 1712592360.0, 2.5)
    assert parse_rate_headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == (
        None,
        None,
        None,
        None,
    )
    assert parse_rate_headers({"X-RateLimit-Remaining": "nan"})[1] is None


def test_window_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="limit"):
        SlidingWindow(0, 1.0)
    with pytest.raises(ValueError, match="window"):
        SlidingWindow(1, 0.0)


# --- two replicas sharing one key, against a pure model of Brew's limiter -------------


@dataclass
class ModelServer:
    """Brew's per-key rolling window: the simulator's own pure limiter, plus a tally."""

    limit: int
    window: float
    accepted: list[float] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self._window = RollingWindow(self.limit, self.window)

    def receive(self, t: float) -> tuple[int, dict[str, str]]:
        decision = self._window.hit(t)
        if decision.allowed:
            self.accepted.append(t)
        else:
            self.rejected += 1
        return (200 if decision.allowed else 429), decision.headers()


def run_replicas(
    *,
    replicas: int,
    concurrency: int,
    limit: int,
    window: float,
    windows: int,
    use_headers: bool,
    seed: int,
    shared: bool = False,
    stagger: float = 0.0,
) -> ModelServer:
    """Discrete-event run: each replica's workers fire back to back through its budget.

    ``shared``: every grant also takes a slot in one log all replicas share (what
    ``rate_limits.shared`` keeps in Redis), moved to the answer's time, or freed, as the
    answer comes; the headers then only lower the limit and block on a 429, as
    :class:`RateBudgets` applies them while sharing. ``stagger``: replica ``r`` starts
    ``r * stagger`` seconds after the first, so later ones meet a key already in use.
    """
    rng = random.Random(seed)
    server = ModelServer(limit, window)
    budgets = [SlidingWindow(limit, window) for _ in range(replicas)]
    common = SlidingWindow(limit, window)
    in_common: dict[tuple[int, int], int] = {}  # (replica, local grant) -> shared grant
    # (time, tie-break, kind, replica, grant, status, headers)
    events: list[tuple[float, int, str, int, int, int, dict[str, str]]] = []
    seq = 0

    def push(
        t: float,
        kind: str,
        replica: int,
        grant: int = 0,
        status: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, replica, grant, status, headers or {}))

    for r in range(replicas):
        for _ in range(concurrency):
            push(r * stagger + rng.uniform(0, 0.05), "try", r)
    end = windows * window + (replicas - 1) * stagger
    while events:
        t, _, kind, r, grant, status, headers = heapq.heappop(events)
        if t > end:
            break
        budget = budgets[r]
        if kind == "try":
            wait = budget.try_acquire(t)
            if wait > 0:
                push(t + wait, "try", r)
                continue
            if shared:
                wait = common.try_acquire(t)
                if wait > 0:  # full: the local slot goes back, nothing is sent
                    budget.settle(t, grant=budget.last_grant, counted=False)
                    push(t + wait, "try", r)
                    continue
                in_common[(r, budget.last_grant)] = common.last_grant
            # Queueing and network delay before Brew counts the request.
            push(t + rng.uniform(0.0, 0.03), "receive", r, budget.last_grant)
        elif kind == "receive":
            status, headers = server.receive(t)
            push(t + rng.uniform(0.001, 0.05), "answer", r, grant, status, headers)
        else:
            budget.settle(t, grant=grant, counted=status != 429)
            if shared:
                common.settle(t, grant=in_common.pop((r, grant)), counted=status != 429)
            if use_headers:
                lim, rem, reset, retry_after = parse_rate_headers(headers)
                if shared:
                    rem = reset = None
                budget.observe(t, limit=lim, remaining=rem, reset=reset)
                if status == 429:
                    budget.block_until(t + (retry_after or 1.0))
            push(t, "try", r)
    return server


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("replicas", "concurrency", "limit", "window"),
    [(2, 4, 10, 2.0), (3, 4, 10, 2.0), (2, 8, 60, 6.0)],
)
def test_replicas_sharing_a_key_converge_below_the_limit(
    seed: int, replicas: int, concurrency: int, limit: int, window: float
) -> None:
    run = {
        "replicas": replicas,
        "concurrency": concurrency,
        "limit": limit,
        "window": window,
        "windows": 20,
        "seed": seed,
    }
    blind = run_replicas(**run, use_headers=False)
    corrected = run_replicas(**run, use_headers=True)
    # Alone, each replica would use the whole limit: a 429 storm.
    assert blind.rejected > len(blind.accepted) * (replicas - 1) * 0.8
    # Reading the shared headers: rare collisions, and the budget is still used. (At 10
    # per 2 s a 50 ms round trip is a quarter of the gap between requests: news is old.)
    assert corrected.rejected <= len(corrected.accepted) * (0.08 if limit < 60 else 0.01)
    assert len(corrected.accepted) >= 0.85 * limit * 20


@pytest.mark.parametrize("seed", [1, 2])
def test_a_single_replica_fills_the_budget_with_no_429(seed: int) -> None:
    server = run_replicas(
        replicas=1, concurrency=8, limit=60, window=6.0, windows=10, use_headers=True, seed=seed
    )
    assert server.rejected == 0
    assert len(server.accepted) >= 0.98 * 60 * 10


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("stagger", [0.0, 0.5, 1.5])
def test_three_replicas_with_a_shared_log_use_the_budget_with_no_429(
    seed: int, stagger: float
) -> None:
    run = {"replicas": 3, "concurrency": 8, "limit": 60, "window": 6.0, "windows": 20}
    server = run_replicas(**run, use_headers=True, seed=seed, shared=True, stagger=stagger)
    assert server.rejected == 0
    assert most_in_window(server.accepted, 6.0) <= 60
    assert len(server.accepted) >= 0.97 * 60 * 20


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replicas_meeting_a_key_in_use_need_the_shared_log(seed: int) -> None:
    """Why ``rate_limits.shared`` exists: a replica starting while others fill the window
    learns of them only from 429s (a refused request is not counted, so they never
    learn of it), and those echo window after window."""
    run = {"replicas": 3, "concurrency": 8, "limit": 60, "window": 6.0, "windows": 20}
    paced = run_replicas(**run, use_headers=True, seed=seed, stagger=0.5)
    shared = run_replicas(**run, use_headers=True, seed=seed, stagger=0.5, shared=True)
    assert paced.rejected > 0
    assert shared.rejected == 0
    assert len(shared.accepted) > len(paced.accepted)


# --- the async face -------------------------------------------------------------------


def small_budgets(metrics: Metrics | None = None) -> RateBudgets:
    return RateBudgets(
        RateLimitsConfig(
            fire=RateLimit(limit=2, window_seconds=0.3),
            run_read=RateLimit(limit=100, window_seconds=60),
            trigger_read=RateLimit(limit=100, window_seconds=60),
        ),
        metrics,
    )


async def test_acquire_waits_for_the_window_and_records_it() -> None:
    metrics = Metrics()
    budgets = small_budgets(metrics)
    assert await budgets.acquire("fire") < 0.05
    assert await budgets.acquire("fire") < 0.05
    waited = await budgets.acquire("fire")
    assert 0.2 < waited < 1.0
    assert (
        metrics.registry.get_sample_value(
            "brew_bridge_rate_budget_wait_seconds_count", {"target": "brew", "policy": "fire"}
        )
        == 3
    )
    # Other policies are not held up by a busy one.
    assert await budgets.acquire("run_read") < 0.05


async def test_a_cancelled_wait_takes_no_slot() -> None:
    budgets = small_budgets()
    await budgets.acquire("fire")
    await budgets.acquire("fire")
    waiter = asyncio.create_task(budgets.acquire("fire"))
    await asyncio.sleep(0)  # one loop turn: the waiter runs until it parks on the full window
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budgets.window("fire").used(budgets.now()) == 2


async def test_observe_applies_headers_and_a_429_blocks() -> None:
    metrics = Metrics()
    budgets = small_budgets(metrics)
    reservation = await budgets.reserve("run_read")
    now = time.time()
    budgets.observe(
        "run_read",
        {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(now) + 2),
            "Retry-After": "1",
        },
        now,
        status=429,
        retry_after=0.3,
        grant=reservation.grant,
    )
    assert (
        metrics.registry.get_sample_value(
            "brew_bridge_rate_budget_remaining", {"target": "brew", "policy": "run_read"}
        )
        == 0
    )
    start = time.monotonic()
    await budgets.acquire("run_read")
    assert time.monotonic() - start >= 0.25  # the body's retryAfter, not the header's 1 s


async def test_no_answer_settles_the_slot() -> None:
    budgets = small_budgets()
    reservation = await budgets.reserve("fire")
    budgets.observe("fire", None, time.time(), grant=reservation.grant)
    assert budgets.window("fire").used(budgets.now()) == 1  # still counted from the failure


def test_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="fire, run_read, trigger_read"):
        small_budgets().window("writes")


# --- clocks and caps ------------------------------------------------------------------


class SteppedClocks:
    """A host's two clocks: monotonic time, and a wall clock NTP may step."""

    def __init__(self) -> None:
        self.elapsed = 5_000.0  # monotonic: seconds since boot
        self.wall_offset = 1_712_592_000.0 - self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    def time(self) -> float:
        return self.elapsed + self.wall_offset

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall_offset += seconds


def stepped_budgets(clocks: SteppedClocks, retry_after_cap: float | None = None) -> RateBudgets:
    extra = {} if retry_after_cap is None else {"retry_after_cap": retry_after_cap}
    return RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=2, window_seconds=10)),
        clock=clocks.monotonic,
        wall=clocks.time,
        **extra,
    )


async def granted_at_once(budgets: RateBudgets, policy: str = "fire") -> bool:
    """Whether a slot is granted without waiting (a refused wait is cancelled: no slot)."""
    try:
        async with asyncio.timeout(0.2):  # real time; the fake clocks never move by themselves
            await budgets.reserve(policy)
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("step", [-3600.0, 3600.0], ids=["backward", "forward"])
async def test_a_wall_clock_step_neither_stalls_nor_frees_the_budget(step: float) -> None:
    clocks = SteppedClocks()
    budgets = stepped_budgets(clocks)

    async def fire_and_answer(left: int) -> bool:
        try:
            async with asyncio.timeout(0.2):  # real time: the fake clocks stand still
                reservation = await budgets.reserve("fire")
        except TimeoutError:
            return False
        headers = {
            "X-RateLimit-Limit": "2",
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Reset": str(int(clocks.time()) + 10),
        }
        budgets.observe("fire", headers, clocks.time(), status=200, grant=reservation.grant)
        return True

    assert await fire_and_answer(1)
    assert await fire_and_answer(0)
    clocks.advance(4.0)
    clocks.step_wall(step)  # NTP corrects the wall clock by an hour
    # Forward: both slots still occupy the window (wall time would have expired them).
    assert budgets.window("fire").remaining(budgets.now()) == 0
    assert not await fire_and_answer(0)
    # Backward: 10 s after the answers the slots are free (wall time: an hour from now).
    clocks.advance(6.0)
    assert await fire_and_answer(1)
    assert await fire_and_answer(0)
    assert not await fire_and_answer(0)


@pytest.mark.parametrize("wall_given", [True, False])
async def test_the_epoch_reset_is_converted_once_at_the_answer(wall_given: bool) -> None:
    clocks = SteppedClocks()
    budgets = stepped_budgets(clocks)
    clocks.advance(1.0)
    clocks.step_wall(3600.0)  # the windows' time and the wall clock now differ by an hour
    reservation = await budgets.reserve("fire")
    headers = {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(clocks.time()) + 4),  # epoch, by the (new) wall clock
    }
    wall_now = clocks.time() if wall_given else None
    budgets.observe("fire", headers, wall_now, status=429, grant=reservation.grant)
    # A 429 with no Retry-After waits for the reset: 4 s on the windows' clock, not the
    # whole window (as an hour-late epoch compared with monotonic time would say).
    assert budgets.window("fire").try_acquire(budgets.now()) == pytest.approx(4.0)


@pytest.mark.parametrize("where", ["header", "body"])
async def test_a_day_long_retry_after_is_capped_like_the_retry_policy(where: str) -> None:
    cap = RetryConfig().retry_after_cap_seconds
    assert cap < 86400
    clocks = SteppedClocks()
    budgets = stepped_budgets(clocks)
    reservation = await budgets.reserve("fire")
    budgets.observe(
        "fire",
        {"Retry-After": "86400"} if where == "header" else {},
        clocks.time(),
        status=429,
        retry_after=86400.0 if where == "body" else None,
        grant=reservation.grant,
    )
    assert budgets.window("fire").try_acquire(budgets.now()) == pytest.approx(cap)
    clocks.advance(cap - 1.0)
    assert not await granted_at_once(budgets)
    clocks.advance(1.0)
    assert await granted_at_once(budgets)  # not a day


async def test_the_retry_after_cap_follows_the_config() -> None:
    clocks = SteppedClocks()
    cap = RetryConfig(retry_after_cap_seconds=5).retry_after_cap_seconds
    budgets = stepped_budgets(clocks, retry_after_cap=cap)
    reservation = await budgets.reserve("fire")
    budgets.observe(
        "fire", {"Retry-After": "60"}, clocks.time(), status=429, grant=reservation.grant
    )
    assert budgets.window("fire").try_acquire(budgets.now()) == pytest.approx(5.0)
    reservation = await budgets.reserve("run_read")
    budgets.observe(
        "run_read", {"Retry-After": "2"}, clocks.time(), status=429, grant=reservation.grant
    )
    assert budgets.window("run_read").try_acquire(budgets.now()) == pytest.approx(2.0)  # kept
    with pytest.raises(ValueError, match="retry_after_cap"):
        RateBudgets(RateLimitsConfig(), retry_after_cap=0.0)


# --- the shared window ------------------------------------------------------------------


class ScriptedShared:
    """A shared window (the Redis edge's protocol) that answers from a script: a wait in
    seconds, or an exception to raise."""

    def __init__(self, *answers: float | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int, float]] = []
        self.settled: list[tuple[int, bool]] = []

    async def take(self, policy: str, limit: int, window: float, grant: int) -> float:
        self.asked.append((policy, limit, window))
        answer = self.answers.pop(0) if self.answers else 0.0
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def settle(self, policy: str, grant: int, window: float, *, counted: bool) -> None:
        self.settled.append((grant, counted))

    def describe(self) -> str:
        return "redis://shared:6379/0"


async def test_a_full_shared_window_gives_the_local_slot_back() -> None:
    clocks = SteppedClocks()
    shared = ScriptedShared(0.0, 3.0)
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=2, window_seconds=10)),
        clock=clocks.monotonic,
        wall=clocks.time,
        shared=shared,
    )
    assert await granted_at_once(budgets)
    assert not await granted_at_once(budgets)  # the shared window is full for 3 s
    assert budgets.window("fire").used(budgets.now()) == 1  # its local slot was given back
    assert shared.asked[-1] == ("fire", 2, 10.0)


async def test_while_sharing_the_headers_count_no_others() -> None:
    clocks = SteppedClocks()
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=2, window_seconds=10)),
        clock=clocks.monotonic,
        wall=clocks.time,
        shared=ScriptedShared(),
    )
    reservation = await budgets.reserve("fire")
    # The server counts both slots used: one is another replica's, already in the
    # shared count; read from the headers too, it would be counted twice.
    headers = {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0"}
    budgets.observe("fire", headers, clocks.time(), status=200, grant=reservation.grant)
    assert budgets.window("fire").remaining(budgets.now()) == 1


async def test_answers_move_the_shared_slot_or_free_it() -> None:
    shared = ScriptedShared()
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=5, window_seconds=10)), shared=shared
    )
    ok, refused, unsent = [(await budgets.reserve("fire")).grant for _ in range(3)]
    budgets.observe("fire", {}, status=200, grant=ok)
    budgets.observe("fire", {"Retry-After": "0"}, status=429, grant=refused)
    budgets.observe("fire", None, grant=unsent, sent=False)
    budgets.observe("fire", {}, status=200, grant=ok)  # twice: settled once
    await asyncio.sleep(0)  # one loop turn: the settles run in the background
    assert shared.settled == [(ok, True), (refused, False), (unsent, False)]


async def test_a_failing_shared_window_is_skipped_for_a_window_then_asked_again() -> None:
    clocks = SteppedClocks()
    metrics = Metrics()
    shared = ScriptedShared(ConnectionError("refused"), 0.0)
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=5, window_seconds=10)),
        metrics,
        clock=clocks.monotonic,
        wall=clocks.time,
        shared=shared,
    )
    assert await granted_at_once(budgets)  # granted by the local window alone
    assert not budgets.sharing("fire")
    reservation = await budgets.reserve("fire")
    assert len(shared.asked) == 1  # not asked again within the window
    # Meanwhile the headers are read again: here another replica uses 3 of the 5.
    headers = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0"}
    budgets.observe("fire", headers, clocks.time(), status=200, grant=reservation.grant)
    assert budgets.window("fire").remaining(budgets.now()) == 0
    errors = metrics.registry.get_sample_value(
        "brew_bridge_rate_budget_shared_errors_total", {"target": "brew", "policy": "fire"}
    )
    assert errors == 2
    clocks.advance(10.0)
    assert budgets.sharing("fire")
    assert await granted_at_once(budgets)
    assert len(shared.asked) == 2


async def test_a_hanging_shared_window_counts_as_failed() -> None:
    class Hanging(ScriptedShared):
        async def take(self, policy: str, limit: int, window: float, grant: int) -> float:
            await asyncio.Event().wait()  # never answers
            return 0.0

    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=5, window_seconds=10)),
        shared=Hanging(),
        shared_timeout=0.05,
    )
    async with asyncio.timeout(2):
        await budgets.reserve("fire")
    assert not budgets.sharing("fire")
