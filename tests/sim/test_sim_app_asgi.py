"""The ASGI boundary without a socket: an unexpected error still answers Brew's 500 envelope."""

from __future__ import annotations

import itertools

import httpx
from sim_support import KEY, TEST_SEED, assert_request_id, assert_shape, fixture

from brew_bridge.sim.brew import SimState, create_app, parse_seed
from brew_bridge.sim.brew.state import STATUS


async def test_an_internal_error_is_a_standard_500() -> None:
    calls = itertools.count()

    def clock() -> float:
        # Building the state and logging the request read the clock; the route's read fails.
        if next(calls) >= 2:
            raise RuntimeError("clock broke")
        return 1_700_000_000.0

    app = create_app(SimState(parse_seed(TEST_SEED), clock=clock))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/api") as client:
        response = await client.get(
            "/v1/automations/runs", headers={"Authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == 500
    assert_request_id(response)
    assert_shape(response.json(), fixture("sdk-9.3.0-dts/error_500_internal_error.json"))
    [entry] = list(app.state.requests)
    assert entry[STATUS] == 500
