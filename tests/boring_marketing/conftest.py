"""One Boring Marketing simulator per test module, on a clock the tests move; both reset
per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from bm_support import START, TEST_SEED, ManualClock

from brew_bridge.testing.boring_marketing import (
    BoringMarketingSimulatorHandle,
    running_boring_marketing_simulator,
)


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def sim_server(clock: ManualClock) -> Iterator[BoringMarketingSimulatorHandle]:
    with running_boring_marketing_simulator(TEST_SEED, clock=clock) as sim:
        yield sim


@pytest.fixture
def sim(
    sim_server: BoringMarketingSimulatorHandle, clock: ManualClock
) -> BoringMarketingSimulatorHandle:
    clock.now = START  # every test starts at the document's run
    sim_server.reset(TEST_SEED)
    return sim_server


@pytest.fixture
def client(sim: BoringMarketingSimulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10.0) as http:
        yield http
