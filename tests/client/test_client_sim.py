"""BrewClient against the real simulator over HTTP on loopback, in both API shapes.

Every test runs against a simulator speaking 9.3 and one speaking 10.x, with a client
on ``api_shape="auto"`` and one pinned to the simulator's shape: the same calls must
give the same answers whatever generation the server speaks.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from brew_bridge.config import BrewConfig, RateLimit, RateLimitsConfig, RetryConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.core.retry import Disposition, next_delay
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import TERMINAL_STATUSES
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.brew.client import BrewClient, RunInfo, build_http_client
from brew_bridge.targets.brew.target import classify
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

T = TypeVar("T")

KEY = "brew_client_test_key"
SCHEMA = {
    "type": "object",
    "fields": [
        {"key": "email", "type": "string", "required": True},
        {"key": "firstName", "type": "string", "required": False},
    ],
}
SEED: dict[str, Any] = {
    "triggers": {
        "tri_signup": {
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_welcome", "durationMs": 300, "pendingMs": 50}],
        },
        "tri_order": {
            "payloadSchema": SCHEMA,
            "automations": [
                {"automationId": "auto_receipt", "durationMs": 300, "pendingMs": 50},
                {
                    "automationId": "auto_upsell",
                    "durationMs": 300,
                    "pendingMs": 50,
                    "outcome": "failed",
                    "error": "Mailbox unavailable",
                },
            ],
        },
        "tri_drafts": {
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_draft", "published": False}],
        },
        "tri_slow": {
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_slow", "durationMs": 600_000}],
        },
        "clerk:org_1:brand_1:user.created": {
            "provider": "clerk",
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_clerk", "durationMs": 300}],
        },
    },
    "keys": {
        KEY: {"scopes": ["all"]},
        "brew_revoked_key": {"revoked": True},
        "brew_no_scope_key": {"scopes": ["emails"]},
    },
}
JANE = {"email": "jane@example.com", "firstName": "Jane"}


@pytest.fixture(scope="module", params=["9.3", "10"])
def sim_server(request: pytest.FixtureRequest) -> Iterator[SimulatorHandle]:
    with running_simulator(SEED, api_shape=request.param) as sim:
        yield sim


@pytest.fixture
def sim(sim_server: SimulatorHandle) -> SimulatorHandle:
    sim_server.reset(SEED)
    return sim_server


def sim_shape(sim: SimulatorHandle) -> str:
    return str(sim.state.api_shape)


def new_client(
    sim: SimulatorHandle, *, shape: str = "auto", key: str = KEY, **kwargs: Any
) -> BrewClient:
    config = BrewConfig(base_url=sim.base_url, timeout_seconds=5.0, connect_timeout_seconds=2.0)
    return BrewClient(build_http_client(config), api_key=lambda: key, api_shape=shape, **kwargs)


@pytest.fixture(params=["auto", "pinned"])
async def client(sim: SimulatorHandle, request: pytest.FixtureRequest) -> AsyncIterator[BrewClient]:
    shape = "auto" if request.param == "auto" else sim_shape(sim)
    brew = new_client(sim, shape=shape)
    yield brew
    await brew._http.aclose()


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 10.0
) -> T:
    """Call ``probe`` until ``done`` says so; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {within} s: {value!r}")
        await asyncio.sleep(0.05)


def fire_statuses(sim: SimulatorHandle) -> list[int]:
    return [r["status"] for r in sim.requests() if r["path"].endswith("/fire")]


# -- fire -------------------------------------------------------------------------------------


async def test_fire_then_replay_with_the_same_key(sim: SimulatorHandle, client: BrewClient) -> None:
    first = await client.fire("tri_order", JANE, "order-1001")
    assert first.status == "triggered"
    assert len(first.run_ids) == 2
    assert first.trigger_instance_id is not None
    assert first.request_id is not None
    assert first.request_id.startswith("req_")
    again = await client.fire("tri_order", JANE, "order-1001")
    assert again.status == "idempotent_replay"
    assert (again.run_ids, again.trigger_instance_id) == (
        first.run_ids,
        first.trigger_instance_id,
    )
    logged = [r for r in sim.requests() if r["path"].endswith("/fire")]
    assert [r["idempotencyKey"] for r in logged] == ["order-1001", "order-1001"]
    assert logged[0]["body"] == {"payload": JANE}


async def test_a_composite_trigger_id_is_fired(client: BrewClient) -> None:
    result = await client.fire("clerk:org_1:brand_1:user.created", JANE, "clerk-1")
    assert result.status == "triggered"
    assert len(result.run_ids) == 1


async def test_fire_conflict(client: BrewClient) -> None:
    await client.fire("tri_signup", JANE, "signup-7")
    with pytest.raises(ApiError) as caught:
        await client.fire("tri_signup", {**JANE, "firstName": "Janet"}, "signup-7")
    assert (caught.value.status, caught.value.code) == (409, "IDEMPOTENCY_CONFLICT")
    assert next_delay(0, 0.0, caught.value, classify(caught.value), RetryConfig(), 0.5) is None


async def test_fire_unknown_trigger(client: BrewClient) -> None:
    with pytest.raises(ApiError) as caught:
        await client.fire("tri_nope", JANE, "k-404")
    assert (caught.value.status, caught.value.code, caught.value.type) == (
        404,
        "TRIGGER_EVENT_NOT_FOUND",
        "not_found",
    )
    assert caught.value.request_id is not None


async def test_fire_with_nothing_published(client: BrewClient) -> None:
    with pytest.raises(ApiError) as caught:
        await client.fire("tri_drafts", JANE, "k-422")
    assert (caught.value.status, caught.value.code) == (422, "NO_PUBLISHED_AUTOMATION")
    assert classify(caught.value) is Disposition.WAIT_FOR_PUBLISH


async def test_fire_payload_mismatch(client: BrewClient) -> None:
    with pytest.raises(ApiError) as caught:
        await client.fire("tri_signup", {"firstName": "No email"}, "k-400")
    err = caught.value
    assert err.status == 400
    assert err.code in {"INVALID_PAYLOAD", "PAYLOAD_MISMATCH"}
    assert err.body["status"] == "payload_mismatch"
    assert err.details is not None
    assert err.details["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("brew_revoked_key", 401, None),
        ("brew_unknown_key", 401, "INVALID_API_KEY"),
        ("brew_no_scope_key", 403, "INSUFFICIENT_PERMISSIONS"),
    ],
)
async def test_auth_failures(sim: SimulatorHandle, key: str, status: int, code: str | None) -> None:
    brew = new_client(sim, key=key)
    try:
        with pytest.raises(AuthError) as caught:
            await brew.fire("tri_signup", JANE, "k-auth")
        assert caught.value.status == status
        if code is not None:
            assert caught.value.code == code
        assert classify(caught.value) is Disposition.AUTH
        # The key works again once restored: it is read for every request.
        sim.put_key(key, {"scopes": ["all"], "revoked": False})
        assert (await brew.fire("tri_signup", JANE, "k-auth")).status == "triggered"
    finally:
        await brew._http.aclose()


async def test_429_carries_retry_after(sim: SimulatorHandle, client: BrewClient) -> None:
    sim.put_limits({"automation.runs.write": {"limit": 1, "windowSeconds": 30}})
    await client.fire("tri_signup", JANE, "k-rl-1")
    with pytest.raises(RateLimited) as caught:
        await client.fire("tri_signup", JANE, "k-rl-2")
    assert caught.value.code == "RATE_LIMITED"
    assert caught.value.retry_after is not None
    assert 1 <= caught.value.retry_after <= 30
    assert (
        next_delay(0, 0.0, caught.value, classify(caught.value), RetryConfig(), 0.0)
        == caught.value.retry_after
    )


async def test_a_reset_after_the_work_is_an_unknown_outcome_resolved_by_replay(
    sim: SimulatorHandle, client: BrewClient
) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "reset"}]}})
    with pytest.raises(UnknownOutcome):
        await client.fire("tri_signup", JANE, "k-reset")
    replay = await client.fire("tri_signup", JANE, "k-reset")
    assert replay.status == "idempotent_replay"
    assert len(replay.run_ids) == 1


async def test_a_hang_past_the_timeout_is_an_unknown_outcome(sim: SimulatorHandle) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "hangAfterWork", "seconds": 10}]}})
    brew = new_client(sim, attempt_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(UnknownOutcome):
            await brew.fire("tri_signup", JANE, "k-hang")
        assert time.monotonic() - started < 3.0
        assert (await brew.fire("tri_signup", JANE, "k-hang")).status == "idempotent_replay"
    finally:
        await brew._http.aclose()


async def test_nothing_listening_is_not_sent() -> None:
    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = BrewConfig(base_url=f"http://127.0.0.1:{port}/api", connect_timeout_seconds=1.0)
    brew = BrewClient(build_http_client(config), api_key=lambda: KEY)
    try:
        with pytest.raises(TransportError) as caught:
            await brew.fire("tri_signup", JANE, "k-down")
        assert not isinstance(caught.value, UnknownOutcome)
    finally:
        await brew._http.aclose()


# -- runs -------------------------------------------------------------------------------------


async def test_list_runs_follows_cursors(client: BrewClient) -> None:
    fired: set[str] = set()
    for n in range(4):
        fired.update((await client.fire("tri_order", JANE, f"order-{n}")).run_ids)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.list_runs(trigger_event_id="tri_order", limit=3, cursor=cursor)
        pages += 1
        seen.extend(run.run_id for run in page.runs)
        if not page.has_more:
            break
        cursor = page.cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert set(seen) == fired


async def test_get_run_to_its_end_with_logs(sim: SimulatorHandle, client: BrewClient) -> None:
    result = await client.fire("tri_order", JANE, "order-logs")

    async def both() -> list[RunInfo]:
        return [await client.get_run(run_id) for run_id in result.run_ids]

    runs = await eventually(both, lambda rs: all(r.status in TERMINAL_STATUSES for r in rs))
    by_automation = {run.automation_id: run for run in runs}
    assert by_automation["auto_receipt"].status == "completed"
    assert by_automation["auto_upsell"].status == "failed"
    assert by_automation["auto_upsell"].error == "Mailbox unavailable"
    assert by_automation["auto_upsell"].completed_at is not None
    detailed = await client.get_run(by_automation["auto_upsell"].run_id, include_logs=True)
    assert detailed.logs
    assert all("nodeId" in entry for entry in detailed.logs)
    if sim_shape(sim) == "10":
        assert client.api_shape == "10"  # auto switched on the refused ?automationRunId=


async def test_live_runs_read_as_pending_or_running(client: BrewClient) -> None:
    result = await client.fire("tri_slow", JANE, "slow-1")
    # Filter first: on auto, "pending" must reach a 10.x server as "queued".
    page = await client.list_runs(trigger_event_id="tri_slow", status="pending")
    assert [r.run_id for r in page.runs] == list(result.run_ids)
    assert all(r.status == "pending" for r in page.runs)  # 10.x's "queued" reads as pending
    run = await client.get_run(result.run_ids[0])
    assert run.status in {"pending", "running"}


async def test_unknown_run_is_404(client: BrewClient) -> None:
    with pytest.raises(ApiError) as caught:
        await client.get_run("run_does_not_exist")
    assert (caught.value.status, caught.value.code) == (404, "AUTOMATION_RUN_NOT_FOUND")


async def test_cancel(client: BrewClient) -> None:
    run_id = (await client.fire("tri_slow", JANE, "slow-cancel")).run_ids[0]
    out = await client.cancel_run(run_id, reason="wrong audience")
    assert out["automationRunId"] == run_id
    assert out["status"] == "canceled"
    assert (await client.get_run(run_id)).status == "canceled"
    with pytest.raises(ApiError) as caught:
        await client.cancel_run(run_id)
    assert (caught.value.status, caught.value.code) == (409, "RUN_NOT_CANCELLABLE")


# -- triggers ---------------------------------------------------------------------------------


async def test_check_ready_and_get_trigger(client: BrewClient) -> None:
    assert (await client.check_ready("tri_signup"))["ready"] is True
    assert (await client.check_ready("tri_drafts"))["ready"] is False
    row = await client.get_trigger("tri_signup")
    assert row["triggerEventId"] == "tri_signup"
    assert row["payloadSchema"] == SCHEMA
    with pytest.raises(ApiError) as caught:
        await client.get_trigger("tri_nope")
    assert caught.value.status == 404


# -- budgets ----------------------------------------------------------------------------------


async def test_budgets_keep_a_burst_under_the_limit(sim: SimulatorHandle) -> None:
    limit, window = 10, 2.0
    sim.put_limits({"automation.runs.write": {"limit": limit, "windowSeconds": window}})
    metrics = Metrics()
    budgets = RateBudgets(
        RateLimitsConfig(fire=RateLimit(limit=limit, window_seconds=window)), metrics
    )
    brew = new_client(sim, budgets=budgets, metrics=metrics)
    started = time.monotonic()
    try:
        gate = asyncio.Semaphore(8)  # a dispatcher's concurrency

        async def one(n: int) -> str:
            async with gate:
                return (await brew.fire("tri_signup", JANE, f"burst-{n}")).status

        statuses = await asyncio.gather(*(one(n) for n in range(25)))
    finally:
        await brew._http.aclose()
    elapsed = time.monotonic() - started
    assert statuses == ["triggered"] * 25
    assert fire_statuses(sim) == [200] * 25  # not one 429
    at = sorted(r["at"] for r in sim.requests() if r["path"].endswith("/fire"))
    most = max(sum(1 for t in at[i:] if t < start + window) for i, start in enumerate(at))
    assert most <= limit
    assert elapsed >= 2 * window * 0.95  # 25 at 10 per 2 s needs two full windows
    waited = metrics.registry.get_sample_value(
        "brew_bridge_rate_budget_wait_seconds_sum", {"target": "brew", "policy": "fire"}
    )
    assert waited is not None
    assert waited > 0
