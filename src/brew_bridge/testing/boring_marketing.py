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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from brew_bridge.sim.boring_marketing.app import create_app
from brew_bridge.sim.boring_marketing.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.boring_marketing.state import BoringState
from brew_bridge.testing.simulator import serving

__all__ = ["BoringMarketingSimulatorHandle", "running_boring_marketing_simulator"]


@dataclass
class BoringMarketingSimulatorHandle:
    """A running Boring Marketing simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process :class:`BoringState`: read it for assertions if you
    must, change things through the admin methods (they go through the server's loop).
    """

    root_url: str
    state: BoringState
    _http: httpx.Client = field(repr=False)

    @property
    def base_url(self) -> str:
        """What a Boring Marketing client takes as its base URL (production:
        ``https://api.boringmarketing.com``): the root, the API has no prefix."""
        return self.root_url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def _put(self, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", path, dict(body or {}))
        return result

    def requests(self) -> list[dict[str, Any]]:
        """Every API request received, oldest first (``GET /_sim/requests``)."""
        data: list[dict[str, Any]] = self._call("GET", "/_sim/requests")["data"]
        return data

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sim/requests")

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, as the API shows it now (``GET /_sim/runs``)."""
        data: list[dict[str, Any]] = self._call("GET", "/_sim/runs")["data"]
        return data

    def stick(self, run_id: str) -> dict[str, Any]:
        """Make a run stay where it is now, live, until it is canceled."""
        return self._put(f"/_sim/runs/{quote(run_id, safe='')}", {"stuck": True})

    def put_brand(self, brand_id: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._put(f"/_sim/brands/{quote(brand_id, safe='')}", body)

    def put_key(self, api_key: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._put(f"/_sim/keys/{quote(api_key, safe='')}", body)

    def put_pipeline(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put(f"/_sim/pipelines/{endpoint}", body)

    def put_faults(self, body: Mapping[str, Any]) -> None:
        self._call("PUT", "/_sim/faults", dict(body))

    def reset(self, seed: Mapping[str, Any] | None = None) -> None:
        """Back to the seed state; with ``seed``, to that seed from now on."""
        self._call("POST", "/_sim/reset", dict(seed) if seed is not None else None)


def _seed_of(seed: Mapping[str, Any] | Path | str | Seed | None) -> Seed:
    if seed is None:
        return Seed()
    if isinstance(seed, Seed):
        return seed
    if isinstance(seed, str | Path):
        return load_seed(seed)
    return parse_seed(seed)


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
    state = BoringState(_seed_of(seed), clock=clock)
    with (
        serving(create_app(state), host=host, http=http) as root,
        httpx.Client(base_url=root, timeout=10.0) as admin,
    ):
        yield BoringMarketingSimulatorHandle(root, state, admin)
