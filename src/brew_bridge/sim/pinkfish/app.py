"""The Pinkfish simulator's HTTP face: the ASGI application and its route tables.

:class:`PinkfishApp` mints an ``x-request-id`` (32 hex) for every answer, records every
API request (``/ext/…``) in the request log with the API key masked out of its path
(``/ext/webhook/***/runs/…``), and turns an unexpected exception into a 500
``INTERNAL_ERROR``. The API routes are :mod:`~brew_bridge.sim.pinkfish.api`'s, the
``/_sim/`` routes :mod:`~brew_bridge.sim.pinkfish.admin`'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from brew_bridge.sim.brew.gates import NoAnswer
from brew_bridge.sim.brew.http import ABORT
from brew_bridge.sim.pinkfish import admin, api
from brew_bridge.sim.pinkfish.gates import RECORD, Endpoint, error, gated
from brew_bridge.sim.pinkfish.ids import request_id
from brew_bridge.sim.pinkfish.state import Logged, PinkfishState

__all__ = ["PinkfishApp", "create_app", "mask_path"]

log = logging.getLogger("brew_bridge.sim.pinkfish")

_KEY_IN_PATH = re.compile(r"^/ext/webhook/[^/]*")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_AdminHandler = Callable[[PinkfishState, Request], Awaitable[Response]]


def mask_path(path: str) -> str:
    """The path with the API key of a polling URL replaced by ``***``."""
    return _KEY_IN_PATH.sub("/ext/webhook/***", path)


class PinkfishApp:
    """The ASGI application over one :class:`PinkfishState`."""

    def __init__(self, state: PinkfishState) -> None:
        self.state = state
        self._api = _api_router(state)
        self._admin = _admin_router(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off (serve_config), websockets are not served
        state = self.state
        rid = request_id()
        path = mask_path(scope["path"])
        is_api = path.startswith("/ext/")
        record: Logged | None = None
        if is_api:
            headers = dict(scope["headers"])
            wait = headers[b"x-api-wait"].decode("latin-1") if b"x-api-wait" in headers else None
            record = Logged(state.clock(), scope["method"], path, rid, wait)
            scope[RECORD] = state.requests.add(record)
        scope[ABORT] = send
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                if record is not None and record.status is None:
                    record.status = message["status"]
            await send(message)

        try:
            await (self._api if is_api else self._admin)(scope, receive, send_with_id)
        except NoAnswer:
            return
        except Exception:
            log.exception("simulator error on %s %s", scope["method"], path)
            if started:
                raise
            await error("INTERNAL_ERROR")(scope, receive, send_with_id)


def create_app(state: PinkfishState) -> PinkfishApp:
    """The ASGI app serving ``state``."""
    return PinkfishApp(state)


def _route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route serving ``handlers`` by method; any other method gets a 405."""

    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(handlers)
            return error("METHOD_NOT_ALLOWED", f"Use {allowed}.", {"allow": allowed})
        return await handler(request)

    return Route(path, endpoint, methods=_METHODS)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error("NOT_FOUND")(scope, receive, send)


def _api_router(state: PinkfishState) -> Router:
    run = "/ext/webhook/{api_key}/runs/{automation_id}/{run_id}"
    routes = [
        _route(
            "/ext/triggers/{trigger_id}", {"POST": gated(state, "fire", api.header_key, api.fire)}
        ),
        _route(f"{run}/status", {"GET": gated(state, "read", api.path_key, api.status)}),
        _route(f"{run}/results", {"GET": gated(state, "read", api.path_key, api.results)}),
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)


def _admin_router(state: PinkfishState) -> Router:
    def bound(handler: _AdminHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await handler(state, request)

        return endpoint

    routes = [
        _route("/_sim/health", {"GET": bound(admin.health)}),
        _route("/_sim/reset", {"POST": bound(admin.reset)}),
        _route("/_sim/triggers/{trigger_id}", {"PUT": bound(admin.put_trigger)}),
        _route("/_sim/keys/{api_key}", {"PUT": bound(admin.put_key)}),
        _route("/_sim/faults", {"PUT": bound(admin.put_faults)}),
        _route(
            "/_sim/requests",
            {"GET": bound(admin.list_requests), "DELETE": bound(admin.clear_requests)},
        ),
        _route("/_sim/runs", {"GET": bound(admin.list_runs)}),
        _route("/_sim/runs/{run_id}", {"PUT": bound(admin.put_run)}),
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)
