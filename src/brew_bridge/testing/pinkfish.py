"""Run the Pinkfish simulator on a free loopback port for a test, a demo or another tool.

::

    from brew_bridge.testing.pinkfish import running_pinkfish_simulator

    with running_pinkfish_simulator({"triggers": {"trg_hello": {"durationMs": 300}}}) as sim:
        fired = httpx.post(f"{sim.base_url}/ext/triggers/trg_hello",
                           headers={"X-API-KEY": "pf_test"}, json={"user_request": "hi"})
        fired.headers["X-Pf-Run-Id"], sim.runs(), sim.requests()

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

from brew_bridge.sim.pinkfish.app import create_app
from brew_bridge.sim.pinkfish.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.pinkfish.state import PinkfishState
from brew_bridge.testing.handle import RunsHandle, seed_of
from brew_bridge.testing.simulator import serve_handle

__all__ = ["PinkfishSimulatorHandle", "running_pinkfish_simulator"]


@dataclass
class PinkfishSimulatorHandle(RunsHandle[PinkfishState]):
    """A running Pinkfish simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process :class:`PinkfishState`: read it for assertions if
    you must, change things through the admin methods (they go through the server's loop).
    """

    @property
    def base_url(self) -> str:
        """What a Pinkfish client takes as its base URL (production:
        ``https://triggers.app.pinkfish.ai``): the root, the API has no prefix."""
        return self.root_url

    def stick(self, run_id: str, stuck: bool = True) -> dict[str, Any]:
        """Make a run stay as it is now (or, ``stuck=False``, go on again)."""
        return self._put(f"/_sim/runs/{quote(run_id, safe='')}", {"stuck": stuck})

    def put_trigger(self, trigger_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put(f"/_sim/triggers/{quote(trigger_id, safe='')}", body)


@contextmanager
def running_pinkfish_simulator(
    seed: Mapping[str, Any] | Path | str | Seed | None = None,
    *,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    http: str = "auto",
) -> Iterator[PinkfishSimulatorHandle]:
    """Serve a Pinkfish simulator built from ``seed`` (mapping, YAML path, or nothing:
    no triggers, any key valid). ``clock`` is the runs' time (epoch seconds; a test may
    pass one it moves by hand); ``http`` picks uvicorn's HTTP implementation."""
    state = PinkfishState(seed_of(seed, Seed, load_seed, parse_seed), clock=clock)
    app = create_app(state)
    with serve_handle(PinkfishSimulatorHandle, state, app, host=host, http=http) as sim:
        yield sim
