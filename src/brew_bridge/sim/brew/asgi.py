"""What the simulators' ASGI applications share around every request.

:class:`LoggingApp` mints the request id every answer carries, logs each API request
(how, and which paths are the API's, each simulator says), hands the route the server's
own ``send`` (under :data:`~.http.ABORT`, for a ``reset`` fault), sends nothing for a
connection a fault dropped (:class:`~.gates.NoAnswer`), and answers an unexpected
exception with the simulator's 500. :func:`admin_binder` makes admin handlers over the
state route endpoints whose bad body is the simulator's 400, and
:func:`common_admin_routes` are the admin routes every simulator serves.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brew_bridge.sim.brew.admin import AdminState, clear_requests, put_faults
from brew_bridge.sim.brew.gates import NoAnswer
from brew_bridge.sim.brew.http import ABORT, Endpoint
from brew_bridge.sim.brew.specs import SpecError

__all__ = [
    "AdminHandler",
    "LoggingApp",
    "admin_binder",
    "common_admin_routes",
    "serve_lifespan",
]

S = TypeVar("S")
A = TypeVar("A", bound=AdminState)


class LoggingApp(ABC):
    """The ASGI application of a simulator: the per-request frame around its routers."""

    log: ClassVar[logging.Logger]
    serves_lifespan: ClassVar[bool] = False  # else lifespan is off (serve_config)

    @abstractmethod
    def new_request_id(self) -> str: ...

    def logged_path(self, path: str) -> str:
        """The path as the request log and error log show it."""
        return path

    @abstractmethod
    def is_api(self, path: str) -> bool: ...

    @abstractmethod
    def log_request(self, scope: Scope, path: str, request_id: str) -> Callable[[int], None]:
        """Log an API request as it arrives (and put its entry in ``scope``); what takes
        the answer's status once it starts."""

    def id_headers(self, request_id: str, began: float) -> list[tuple[bytes, bytes]]:
        """The headers every answer gets (``began``: ``time.perf_counter()`` on arrival)."""
        return [(b"x-request-id", request_id.encode())]

    @abstractmethod
    def router(self, is_api: bool) -> ASGIApp: ...

    @abstractmethod
    def internal_error(self) -> Response: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.serves_lifespan:
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not served
        began = time.perf_counter()
        rid = self.new_request_id()
        path = self.logged_path(scope["path"])
        is_api = self.is_api(path)
        on_status = self.log_request(scope, path, rid) if is_api else None
        scope[ABORT] = send
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *self.id_headers(rid, began)]
                if on_status is not None:
                    on_status(message["status"])
            await send(message)

        try:
            await self.router(is_api)(scope, receive, send_with_id)
        except NoAnswer:
            return
        except Exception:
            self.log.exception("simulator error on %s %s", scope["method"], path)
            if started:
                raise
            await self.internal_error()(scope, receive, send_with_id)


async def serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


AdminHandler = Callable[[S, Request], Awaitable[Response]]


def admin_binder(
    state: S, spec_error: Callable[[SpecError], Response]
) -> Callable[[AdminHandler[S]], Endpoint]:
    """What makes an admin handler over ``state`` a route endpoint; a :class:`SpecError`
    it raises (a bad body) is answered ``spec_error``'s 400."""

    def bind(handler: AdminHandler[S]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(state, request)
            except SpecError as exc:
                return spec_error(exc)

        return endpoint

    return bind


def common_admin_routes(
    route: Callable[[str, Mapping[str, Endpoint]], Route],
    bind: Callable[[AdminHandler[A]], Endpoint],
    health: AdminHandler[A],
    reset: AdminHandler[A],
    list_requests: AdminHandler[A],
) -> list[Route]:
    """The admin routes every simulator serves: health, reset, faults, the request log."""
    return [
        route("/_sim/health", {"GET": bind(health)}),
        route("/_sim/reset", {"POST": bind(reset)}),
        route("/_sim/faults", {"PUT": bind(put_faults)}),
        route("/_sim/requests", {"GET": bind(list_requests), "DELETE": bind(clear_requests)}),
    ]
