"""The bridge's own HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``, and the
status page ``/`` with ``/status.json`` (:mod:`brew_bridge.observe.status`).

``/healthz`` answers 200 while the process serves requests at all (a liveness probe:
restart me if this fails). ``/readyz`` answers 200 only when every readiness check
passes (the consumer runs, the outbox takes writes, the Brew circuit is closed) and
503 with each failing check's reason otherwise, so an orchestrator stops routing work
here and an operator reading the body sees what to fix. ``/metrics`` is the Prometheus
text format of the bridge's :class:`~brew_bridge.observe.metrics.Metrics` registry.

The server runs inside the worker's event loop (uvicorn ``Server.serve()`` as a task)
on a socket bound here first, so a taken port fails with a clear error instead of
uvicorn's ``sys.exit``, and port 0 gives a free port that :attr:`HttpServer.port` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from brew_bridge.errors import BridgeError
from brew_bridge.observe.metrics import Metrics

__all__ = ["HttpServer", "ReadinessCheck", "build_app", "failing_checks"]

# A readiness check returns None when fine, else a sentence saying what is wrong.
ReadinessCheck = Callable[[], str | None]

log = structlog.get_logger(__name__)


def failing_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """Each failing check's reason, by name (``/readyz``, and the status page's fixes)."""
    failing: dict[str, str] = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # a broken check means "not ready", never a 500
            reason = f"check failed: {exc}"
        if reason is not None:
            failing[name] = reason
    return failing


def build_app(
    metrics: Metrics,
    checks: Mapping[str, ReadinessCheck],
    *,
    routes: Sequence[BaseRoute] = (),
    warnings: Mapping[str, str] | None = None,
) -> Starlette:
    """The ASGI app. ``checks`` maps a name (``consumer``, ``outbox``, ``circuit``) to a
    check; ``routes`` are served beside them (the webhooks); ``warnings`` are shown on
    ``/readyz`` without making it fail (a webhook source that verifies nothing)."""
    notes = dict(warnings or {})

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        failing = failing_checks(checks)
        extra = {"warnings": notes} if notes else {}
        if failing:
            return JSONResponse({"ready": False, "reasons": failing, **extra}, status_code=503)
        return JSONResponse({"ready": True, **extra})

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *routes,
        ]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the worker owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Serve an ASGI app from inside a running event loop."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when configured as 0)."""
        if self._bound_port is None:
            raise RuntimeError("the server is not started")
        return self._bound_port

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every answer waited ~40 ms for a delayed ACK (measured on loopback).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise BridgeError(
                f"server: cannot listen on {self._host}:{self._port}: {exc.strerror} "
                "(fix: set server.port to a free port, or stop what holds it)"
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app, log_config=None, access_log=False, lifespan="off", log_level="warning"
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise BridgeError("server: stopped while starting")
            await asyncio.sleep(0.01)
        log.info("http server listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
