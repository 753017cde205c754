"""Run the Brew simulator on a free loopback port for a test, a demo or another tool.

::

    from brew_bridge.testing import running_simulator

    with running_simulator({"triggers": {"tri_welcome": {...}}}) as sim:
        httpx.post(f"{sim.base_url}/v1/automations/triggers/tri_welcome/fire",
                   headers={"Authorization": "Bearer brew_test"}, json={"payload": {...}})
        assert sim.requests()[-1]["status"] == 200

The server is real uvicorn on a real socket (bound before uvicorn starts, so the port is
known and never races), in a daemon thread with its own event loop; the context manager
returns once it accepts connections and stops it on exit, within about a second even
while requests hang on an injected fault. Any process can talk to it: the Node SDK, the
bridge under test, ``curl``. The handle's helpers use the admin routes (``/_sim/*``)
over HTTP, exactly what an out-of-process client would use.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import uvicorn

from brew_bridge.sim.brew.app import create_app
from brew_bridge.sim.brew.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.brew.state import SimState
from brew_bridge.testing.handle import AdminHandle, seed_of

__all__ = [
    "SimulatorHandle",
    "bind_socket",
    "running_simulator",
    "serve_config",
    "serve_handle",
    "serving",
]

S = TypeVar("S")
H = TypeVar("H")

_START_TIMEOUT = 15.0


def serve_config(app: Any, *, log_level: str = "warning", http: str = "auto") -> uvicorn.Config:
    """The uvicorn settings the simulator runs with (shared by the CLI and tests).

    ``http``: ``auto`` (httptools when installed, else h11), ``h11`` or ``httptools``. The
    loop is always plain asyncio, so behaviour does not change with what is installed.
    """
    return uvicorn.Config(
        app,
        http=http,
        loop="asyncio",
        lifespan="off",
        ws="none",
        log_level=log_level,
        access_log=False,
        server_header=False,
        # A hung request (an injected fault) must not hold a shutdown for long.
        timeout_graceful_shutdown=1,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one).

    Listening before uvicorn starts means a client may connect as soon as the port is
    known: the connection waits in the backlog until the server accepts it.

    Created with ``IPPROTO_TCP`` explicitly: asyncio only sets ``TCP_NODELAY`` on accepted
    connections whose socket says so, and without it every answer (headers and body go
    out as two writes) waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class SimulatorHandle(AdminHandle[SimState]):
    """A running Brew simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process :class:`SimState` (same thread-unsafe object the
    server uses): read it for assertions if you must, but change things through the
    admin methods, which go through the server's event loop.
    """

    @property
    def base_url(self) -> str:
        """What a Brew client takes as its base URL (production: ``https://brew.new/api``)."""
        return f"{self.root_url}/api"

    def put_trigger(self, trigger_event_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put(f"/_sim/triggers/{quote(trigger_event_id, safe='')}", body)

    def put_limits(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put("/_sim/limits", body)


@contextmanager
def running_simulator(
    seed: Mapping[str, Any] | Path | str | Seed | None = None,
    *,
    api_shape: str | None = None,
    host: str = "127.0.0.1",
    http: str = "auto",
) -> Iterator[SimulatorHandle]:
    """Serve a simulator built from ``seed`` (mapping, YAML path, or nothing: empty).

    ``api_shape`` ("9.3" or "10") wins over the seed's ``apiShape``; default "9.3".
    ``http`` picks uvicorn's HTTP implementation (see :func:`serve_config`).
    """
    state = SimState(seed_of(seed, Seed, load_seed, parse_seed), api_shape_override=api_shape)
    with serve_handle(SimulatorHandle, state, create_app(state), host=host, http=http) as sim:
        yield sim


@contextmanager
def serve_handle(
    handle: Callable[[str, S, httpx.Client], H], state: S, app: Any, *, host: str, http: str
) -> Iterator[H]:
    """Serve ``app`` (over ``state``) on a free port of ``host``: the ``handle`` on it,
    with an HTTP client on its admin routes."""
    with (
        serving(app, host=host, http=http) as root,
        httpx.Client(base_url=root, timeout=10.0) as admin,
    ):
        yield handle(root, state, admin)


@contextmanager
def serving(app: Any, *, host: str = "127.0.0.1", http: str = "auto") -> Iterator[str]:
    """Serve the ASGI ``app`` on a free port of ``host`` in a daemon thread: its root URL,
    once it accepts connections; stopped on exit (within about a second)."""
    sock = bind_socket(host, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(serve_config(app, http=http))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sim-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator's server thread exited during start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start within {_START_TIMEOUT:g} s")
            time.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
