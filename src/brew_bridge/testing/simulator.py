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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn

from brew_bridge.sim.brew.app import create_app
from brew_bridge.sim.brew.seed import Seed, load_seed, parse_seed
from brew_bridge.sim.brew.state import SimState

__all__ = ["SimulatorHandle", "bind_socket", "running_simulator", "serve_config", "serving"]

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
class SimulatorHandle:
    """A running simulator: its URLs and its admin routes as methods.

    ``state`` is the live in-process :class:`SimState` (same thread-unsafe object the
    server uses): read it for assertions if you must, but change things through the
    admin methods, which go through the server's event loop.
    """

    root_url: str
    state: SimState
    _http: httpx.Client = field(repr=False)

    @property
    def base_url(self) -> str:
        """What a Brew client takes as its base URL (production: ``https://brew.new/api``)."""
        return f"{self.root_url}/api"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def requests(self) -> list[dict[str, Any]]:
        """Every API request received, oldest first (``GET /_sim/requests``)."""
        data: list[dict[str, Any]] = self._call("GET", "/_sim/requests")["data"]
        return data

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sim/requests")

    def put_trigger(self, trigger_event_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/_sim/triggers/{quote(trigger_event_id, safe='')}"
        result: dict[str, Any] = self._call("PUT", path, dict(body))
        return result

    def put_key(self, api_key: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        path = f"/_sim/keys/{quote(api_key, safe='')}"
        result: dict[str, Any] = self._call("PUT", path, dict(body or {}))
        return result

    def put_limits(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", "/_sim/limits", dict(body))
        return result

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
    state = SimState(_seed_of(seed), api_shape_override=api_shape)
    with (
        serving(create_app(state), host=host, http=http) as root,
        httpx.Client(base_url=root, timeout=10.0) as admin,
    ):
        yield SimulatorHandle(root, state, admin)


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
