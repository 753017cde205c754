"""The Boring Marketing simulator's HTTP face: the ASGI application and its route tables.

:class:`BoringApp` gives every answer the vendor's ``X-Request-ID`` (8 hex characters)
and ``X-Process-Time`` (seconds) headers, records every API request (anything outside
``/_sim/``) in the request log with the key masked, and turns an unexpected exception
into a 500 ``{"detail": "Internal Server Error"}``. The API routes are
:mod:`~brew_bridge.sim.boring_marketing.api`'s, the ``/_sim/`` routes
:mod:`~brew_bridge.sim.boring_marketing.admin`'s; a path no route serves is FastAPI's
404 ``{"detail": "Not Found"}``, a method a route does not serve its 405.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from brew_bridge.sim.boring_marketing import admin, api
from brew_bridge.sim.boring_marketing.gates import RECORD, Endpoint, error, gated
from brew_bridge.sim.boring_marketing.pipelines import ENDPOINTS
from brew_bridge.sim.boring_marketing.state import BoringState, Logged, mask_key
from brew_bridge.sim.brew.gates import NoAnswer
from brew_bridge.sim.brew.http import ABORT

__all__ = ["BoringApp", "create_app"]

log = logging.getLogger("brew_bridge.sim.boring_marketing")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_AdminHandler = Callable[[BoringState, Request], Awaitable[Response]]


class BoringApp:
    """The ASGI application over one :class:`BoringState`."""

    def __init__(self, state: BoringState) -> None:
        self.state = state
        self._api = _api_router(state)
        self._admin = _admin_router(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off (serve_config), websockets are not served
        state = self.state
        began = time.perf_counter()
        rid = os.urandom(4).hex()
        path: str = scope["path"]
        is_api = not path.startswith("/_sim/")
        record: Logged | None = None
        if is_api:
            headers = dict(scope["headers"])
            key = headers.get(b"x-api-key")
            masked = mask_key(key.decode("latin-1")) if key is not None else None
            record = Logged(state.clock(), scope["method"], path, rid, masked)
            state.requests.append(record)
            scope[RECORD] = record
        scope[ABORT] = send
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                took = f"{time.perf_counter() - began:.4f}".encode()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", rid.encode()),
                    (b"x-process-time", took),
                ]
                if record is not None and record.status is None:
                    record.status = message["status"]
            await send(message)

        try:
            await (self._api if is_api else self._admin)(scope, receive, send_with_ids)
        except NoAnswer:
            return
        except Exception:
            log.exception("simulator error on %s %s", scope["method"], path)
            if started:
                raise
            await error(500, "Internal Server Error")(scope, receive, send_with_ids)


def create_app(state: BoringState) -> BoringApp:
    """The ASGI app serving ``state``."""
    return BoringApp(state)


def _route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route serving ``handlers`` by method; any other method gets a 405."""

    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return error(405, "Method Not Allowed", {"allow": ", ".join(handlers)})
        return await handler(request)

    return Route(path, endpoint, methods=_METHODS)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error(404, "Not Found")(scope, receive, send)


def _api_router(state: BoringState) -> Router:
    brand = "/brands/{brand_id}"
    routes = [
        _route(f"{brand}/runs", {"GET": gated(state, "read", api.list_runs)}),
        _route(f"{brand}/runs/{{run_id}}", {"GET": gated(state, "read", api.get_run)}),
        _route(f"{brand}/runs/{{run_id}}/cancel", {"POST": gated(state, "read", api.cancel_run)}),
    ]
    routes += [
        _route(f"{brand}/{endpoint}", {"POST": gated(state, "fire", api.fire(endpoint))})
        for endpoint in ENDPOINTS
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)


def _admin_router(state: BoringState) -> Router:
    def bound(handler: _AdminHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await handler(state, request)

        return endpoint

    routes = [
        _route("/_sim/health", {"GET": bound(admin.health)}),
        _route("/_sim/reset", {"POST": bound(admin.reset)}),
        _route("/_sim/brands/{brand_id}", {"PUT": bound(admin.put_brand)}),
        _route("/_sim/keys/{api_key}", {"PUT": bound(admin.put_key)}),
        _route("/_sim/pipelines/{endpoint:path}", {"PUT": bound(admin.put_pipeline)}),
        _route("/_sim/faults", {"PUT": bound(admin.put_faults)}),
        _route(
            "/_sim/requests",
            {"GET": bound(admin.list_requests), "DELETE": bound(admin.clear_requests)},
        ),
        _route("/_sim/runs", {"GET": bound(admin.list_runs)}),
        _route("/_sim/runs/{run_id}", {"PUT": bound(admin.put_run)}),
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)
