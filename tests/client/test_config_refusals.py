"""Brew's answers about the setup (the brand) are refusals, like a 401/403; a run
Brew says it does not know is failed only once a second, later read confirms it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from brew_bridge.config import BrewConfig
from brew_bridge.core.authgate import AuthGate
from brew_bridge.core.circuit import Circuit
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import ApiError, AuthError
from brew_bridge.events import RunRead
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import RunRecord
from brew_bridge.targets.brew.client import CONFIG_REFUSALS, BrewClient, build_http_client
from brew_bridge.targets.brew.poll import BrewRuns
from brew_bridge.targets.brew.pollplan import PollSettings
from brew_bridge.targets.brew.target import auth_fix_hint, classify
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

T = TypeVar("T")

ORG_KEY = "brew_org_key"
BRAND_KEY = "brew_brand_key"
JANE = {"email": "jane@example.com"}
SEED: dict[str, Any] = {
    "triggers": {
        "tri_signup": {
            "payloadSchema": {
                "type": "object",
                "fields": [{"key": "email", "type": "string", "required": True}],
            },
            "automations": [{"automationId": "auto_welcome", "durationMs": 60_000}],
        }
    },
    "keys": {
        ORG_KEY: {"brands": ["brand_a"]},
        BRAND_KEY: {"brandId": "brand_a"},
    },
}


@pytest.fixture(scope="module", params=["9.3", "10"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimulatorHandle]:
    with running_simulator(SEED, api_shape=request.param) as handle:
        yield handle


def sim_client(sim: SimulatorHandle, key: str, brand_id: str | None) -> BrewClient:
    config = BrewConfig(base_url=sim.base_url, timeout_seconds=5.0, connect_timeout_seconds=2.0)
    return BrewClient(
        build_http_client(config),
        api_key=lambda: key,
        brand_id=brand_id,
        api_shape=str(sim.state.api_shape),
    )


async def refused(call: Callable[[], Awaitable[Any]]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await call()
    return caught.value


@pytest.mark.parametrize(
    ("brand_id", "status", "code"),
    [(None, 400, "BRAND_ID_REQUIRED"), ("brand_z", 404, "BRAND_NOT_FOUND")],
)
async def test_setup_answers_are_refusals_on_every_route(
    sim: SimulatorHandle, brand_id: str | None, status: int, code: str
) -> None:
    good = sim_client(sim, BRAND_KEY, None)
    bad = sim_client(sim, ORG_KEY, brand_id)
    try:
        fired = await good.fire("tri_signup", JANE, f"k-{code}")
        run_id = fired.run_ids[0]
        for call in (
            lambda: bad.fire("tri_signup", JANE, f"k-{code}-bad"),
            lambda: bad.get_run(run_id),
            lambda: bad.list_runs(trigger_event_id="tri_signup"),
        ):
            error = await refused(call)
            assert (error.status, error.code) == (status, code)  # the answer as Brew gave it
            assert classify(error) is Disposition.AUTH
    finally:
        await good._http.aclose()
        await bad._http.aclose()


async def test_other_not_found_answers_stay_about_the_request(sim: SimulatorHandle) -> None:
    client = sim_client(sim, BRAND_KEY, None)
    try:
        with pytest.raises(ApiError) as trigger:
            await client.fire("tri_nope", JANE, "k-nope")
        with pytest.raises(ApiError) as run:
            await client.get_run("run_nope")
    finally:
        await client._http.aclose()
    assert not isinstance(trigger.value, AuthError)
    assert (trigger.value.status, trigger.value.code) == (404, "TRIGGER_EVENT_NOT_FOUND")
    assert classify(trigger.value) is Disposition.REJECT
    assert not isinstance(run.value, AuthError)
    assert (run.value.status, run.value.code) == (404, "AUTOMATION_RUN_NOT_FOUND")


def envelope(status: int, code: str, kind: str) -> httpx.Response:
    body = {
        "error": {
            "code": code,
            "type": kind,
            "message": f"{code} happened",
            "suggestion": "Fix it.",
            "docs": "https://docs.brew.new/api-reference/api/errors",
        }
    }
    return httpx.Response(status, content=json.dumps(body).encode())


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> BrewClient:
    http = httpx.AsyncClient(
        base_url="http://brew.test/api/", transport=httpx.MockTransport(handler)
    )
    return BrewClient(http, api_key=lambda: "brew_k", api_shape="9.3")


@pytest.mark.parametrize(
    ("status", "code", "needles"),
    [
        (400, "BRAND_ID_REQUIRED", ["organization", "set brew.brand_id", "X-Brand-Id"]),
        (404, "BRAND_NOT_FOUND", ["brand id is wrong", "another brand", "brew.brand_id"]),
        (403, "BRAND_SCOPE_MISMATCH", ["another brand", "brew.brand_id"]),
        (403, "ORG_SCOPE_REQUIRED", ["organization-scoped", "BREW_API_KEY"]),
    ],
)
def test_every_setup_answer_has_its_own_fix(status: int, code: str, needles: list[str]) -> None:
    assert code in CONFIG_REFUSALS
    hint = auth_fix_hint(status, code)
    for needle in needles:
        assert needle in hint


def test_the_gate_opens_on_a_setup_answer_and_says_what_to_fix() -> None:
    metrics = Metrics()
    gate = AuthGate(
        Circuit(probe_interval=5.0), metrics, target="brew", title="Brew", hint=auth_fix_hint
    )
    error = AuthError(404, "BRAND_NOT_FOUND", "not_found", "Brand not found.")
    gate.observe(error, 100.0)
    assert gate.is_open
    reason = gate.reason()
    assert reason is not None
    assert reason.startswith("Brew answered 404 BRAND_NOT_FOUND; firing and polling are paused.")
    assert "brew.brand_id" in reason
    assert metrics.registry.get_sample_value("brew_bridge_circuit_open", {"target": "brew"}) == 1


# -- BrewRuns: a run Brew says it does not know ------------------------------------------


class Slots:
    """ReadSlots as the poller passes them, minus budget and gate: 404s come through."""

    def __init__(self) -> None:
        self.reads = 0
        self.held_until: float | None = None

    async def read(self, mode: str, call: Callable[[], Awaitable[T]]) -> T:
        self.reads += 1
        return await call()

    def read_at(self, at: float) -> None:
        self.held_until = at  # no poller here: the next cycle is the test's


def run_record(run_id: str, fired_at: float) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        delivery_id=1,
        route="welcome",
        target="brew",
        action="tri_signup",
        idempotency_key="welcome:1",
        event_id=None,
        status="running",
        fired_at=fired_at,
        last_checked_at=None,
    )


def run_row(run_id: str, status: str) -> httpx.Response:
    row = {"automationRunId": run_id, "automationId": "auto_welcome", "status": status}
    return httpx.Response(200, content=json.dumps({"data": [row]}).encode())


class Brew:
    """Answers run reads from a list of (status, code) or a run status, in order."""

    def __init__(self, *answers: tuple[int, str] | str) -> None:
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        run_id = request.url.params["automationRunId"]
        item = self.answers.pop(0)
        if isinstance(item, str):
            return run_row(run_id, item)
        return envelope(item[0], item[1], "not_found")


async def cycle(runs: BrewRuns, record: RunRecord, now: float, slots: Slots) -> list[RunRead]:
    return [seen for batch in [b async for b in runs.poll([record], now, slots)] for seen in batch]


async def test_a_run_is_failed_only_when_a_later_read_confirms_brew_lost_it() -> None:
    clock = [100.0]
    client = mock_client(Brew((404, "AUTOMATION_RUN_NOT_FOUND"), (404, "AUTOMATION_RUN_NOT_FOUND")))
    runs = BrewRuns(
        client,
        PollSettings(interval=1.0),
        fetch_logs=False,
        clock=lambda: clock[0],
        not_found_confirm_seconds=10.0,
    )
    record = run_record("run_1", fired_at=99.0)
    slots = Slots()
    try:
        assert await cycle(runs, record, 100.0, slots) == []  # the first 404 ends nothing
        assert slots.reads == 1
        for now in (101.0, 105.0, 109.5):  # no reads spent before the confirmation is due
            clock[0] = now
            assert await cycle(runs, record, now, slots) == []
        assert slots.reads == 1
        clock[0] = 110.0
        (seen,) = await cycle(runs, record, 110.0, slots)
    finally:
        await client._http.aclose()
    assert slots.reads == 2
    assert seen.status == "failed"
    assert seen.error is not None
    assert seen.error.startswith("Brew no longer knows run run_1: two reads 10.0 s apart")
    assert seen.logs == ()


async def test_a_run_found_on_the_confirming_read_goes_on() -> None:
    clock = [100.0]
    client = mock_client(Brew((404, "AUTOMATION_RUN_NOT_FOUND"), "running", "completed"))
    runs = BrewRuns(
        client, PollSettings(interval=1.0), fetch_logs=False, clock=lambda: clock[0]
    )  # default: five intervals
    record = run_record("run_1", fired_at=99.0)
    slots = Slots()
    try:
        assert await cycle(runs, record, 100.0, slots) == []
        clock[0] = 104.0
        assert await cycle(runs, record, 104.0, slots) == []
        assert slots.reads == 1
        clock[0] = 105.0
        (found,) = await cycle(runs, record, 105.0, slots)
        assert found.status == "running"
        clock[0] = 106.0  # forgotten: read as usual from now on, not held back again
        (ended,) = await cycle(runs, record, 106.0, slots)
    finally:
        await client._http.aclose()
    assert ended.status == "completed"
    assert slots.reads == 3


async def test_a_404_that_does_not_name_the_run_never_ends_it() -> None:
    client = mock_client(
        Brew((404, "NOT_FOUND"), (404, "NOT_FOUND"), (404, "NOT_FOUND"), "running")
    )
    runs = BrewRuns(
        client,
        PollSettings(interval=1.0),
        fetch_logs=False,
        clock=lambda: 100.0,
        not_found_confirm_seconds=0.0,
    )
    record = run_record("run_1", fired_at=99.0)
    slots = Slots()
    try:
        for now in (100.0, 101.0, 102.0):
            assert await cycle(runs, record, now, slots) == []
        (seen,) = await cycle(runs, record, 103.0, slots)
    finally:
        await client._http.aclose()
    assert seen.status == "running"
    assert slots.reads == 4
