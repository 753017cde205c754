"""One simulator per test module, reset to the test seed before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sim_support import KEY, TEST_SEED

from brew_bridge.testing.simulator import SimulatorHandle, running_simulator


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorHandle]:
    with running_simulator(TEST_SEED) as sim:
        yield sim


@pytest.fixture
def sim(sim_server: SimulatorHandle) -> SimulatorHandle:
    sim_server.reset(TEST_SEED)
    return sim_server


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    """An API client with a valid key (any ``brew_`` key is valid in the test seed)."""
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10.0
    ) as http:
        yield http
