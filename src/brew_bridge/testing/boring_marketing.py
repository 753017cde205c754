"""Run the Boring Marketing simulator on a free loopback port for a test, a demo or a tool.

::

    from brew_bridge.testing.boring_marketing import running_boring_marketing_simulator

    with running_boring_marketing_simulator({"pipelines": {"brief": {"stageMs": 300}}}) as sim:
        fired = httpx.post(f"{sim.base_url}/brands/{brand}/brief",
                           headers={"X-API-Key": "bm_test"}, json={})
        fired.json()["run_id"], sim.runs(), sim.requests()

Like :func:`~brew_bridge.testing.simulator.running_simulator`: real uvicorn on a socket
bound before it starts, in a daemon thread; the handle's helpers are the admin routes
(``/_sim/*``) over HTTP, what an out-of-process client would use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from brew_bridge.sim.boring_marketing.app import create_app
from brew_bridge.sim.boring_marketing.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.boring_marketing.state import BoringState
from brew_bridge.testing.handle import RunsHandle, seed_of
from brew_bridge.testing.simulator import serve_handle

__all__ = ["BoringMarketingSimulatorHandle", "running_boring_marketing_simulator"]


@dataclass
class BoringMarketingSimulatorHandle(RunsHandle[BoringState]):
    """A running Boring Marketing simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process :class:`BoringState`: read it for assertions if you
    must, change things through the admin methods (they go through the server's loop).
    """

    @property
    def base_url(self) -> str:
        """What a Boring Marketing client takes as its base URL (production:
        ``https://api.boringmarketing.com``): the root, the API has no prefix."""
        return self.root_url

    def stick(self, run_id: str) -> dict[str, Any]:
        """Make a run stay where it is now, live, until it is canceled."""
        return self._put(f"/_sim/runs/{quote(run_id, safe='')}", {"stuck": True})

    def put_brand(self, brand_id: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._put(f"/_sim/brands/{quote(brand_id, safe='')}", body)

    def put_pipeline(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put(f"/_sim/pipelines/{endpoint}", body)


@contextmanager
def running_boring_marketing_simulator(
    seed: Mapping[str, Any] | Path | str | Seed | None = None,
    *,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    http: str = "auto",
) -> Iterator[BoringMarketingSimulatorHandle]:
    """Serve a Boring Marketing simulator built from ``seed`` (mapping, YAML path, or
    nothing: any ``bm_`` key, any brand, default pipelines). ``clock`` is the runs' time
    (epoch seconds; a test may pass one it moves by hand); ``http`` picks uvicorn's HTTP
    implementation."""
    state = BoringState(seed_of(seed, Seed, load_seed, parse_seed), clock=clock)
    app = create_app(state)
    with serve_handle(BoringMarketingSimulatorHandle, state, app, host=host, http=http) as sim:
        yield sim
