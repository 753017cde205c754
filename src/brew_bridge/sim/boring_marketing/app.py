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
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from brew_bridge.sim.boring_marketing import admin, api
from brew_bridge.sim.boring_marketing.gates import RECORD, Endpoint, error, gated
from brew_bridge.sim.boring_marketing.pipelines import ENDPOINTS
from brew_bridge.sim.boring_marketing.state import BoringState, Logged, mask_key
from brew_bridge.sim.brew.admin import list_logged
from brew_bridge.sim.brew.asgi import LoggingApp, admin_binder, common_admin_routes
from brew_bridge.sim.brew.http import route_by_method

__all__ = ["BoringApp", "create_app"]


class BoringApp(LoggingApp):
    """The ASGI application over one :class:`BoringState`."""

    log = logging.getLogger("brew_bridge.sim.boring_marketing")

    def __init__(self, state: BoringState) -> None:
        self.state = state
        self._api = _api_router(state)
        self._admin = _admin_router(state)

    def new_request_id(self) -> str:
        return os.urandom(4).hex()

    def is_api(self, path: str) -> bool:
        return not path.startswith("/_sim/")

    def log_request(self, scope: Scope, path: str, request_id: str) -> Callable[[int], None]:
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key")
        masked = mask_key(key.decode("latin-1")) if key is not None else None
        record = Logged(self.state.clock(), scope["method"], path, request_id, masked)
        self.state.requests.append(record)
        scope[RECORD] = record
        return record.answered

    def id_headers(self, request_id: str, began: float) -> list[tuple[bytes, bytes]]:
        took = f"{time.perf_counter() - began:.4f}".encode()
        return [(b"x-request-id", request_id.encode()), (b"x-process-time", took)]

    def router(self, is_api: bool) -> ASGIApp:
        return self._api if is_api else self._admin

    def internal_error(self) -> Response:
        return error(500, "Internal Server Error")


def create_app(state: BoringState) -> BoringApp:
    """The ASGI app serving ``state``."""
    return BoringApp(state)


def _route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route serving ``handlers`` by method; any other method gets a 405."""
    return route_by_method(path, handlers, _not_allowed)


def _not_allowed(request: Request, allowed: str) -> Response:
    return error(405, "Method Not Allowed", {"allow": allowed})


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
    bound = admin_binder(state, admin.spec_error)
    routes = common_admin_routes(_route, bound, admin.health, admin.reset, list_logged)
    routes += [
        _route("/_sim/brands/{brand_id}", {"PUT": bound(admin.put_brand)}),
        _route("/_sim/keys/{api_key}", {"PUT": bound(admin.put_key)}),
        _route("/_sim/pipelines/{endpoint:path}", {"PUT": bound(admin.put_pipeline)}),
        _route("/_sim/runs", {"GET": bound(admin.list_runs)}),
        _route("/_sim/runs/{run_id}", {"PUT": bound(admin.put_run)}),
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)
