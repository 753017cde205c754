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
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from brew_bridge.sim.brew.admin import list_logged
from brew_bridge.sim.brew.asgi import LoggingApp, admin_binder, common_admin_routes
from brew_bridge.sim.brew.http import route_by_method
from brew_bridge.sim.pinkfish import admin, api
from brew_bridge.sim.pinkfish.gates import RECORD, Endpoint, error, gated
from brew_bridge.sim.pinkfish.ids import request_id
from brew_bridge.sim.pinkfish.state import Logged, PinkfishState

__all__ = ["PinkfishApp", "create_app", "mask_path"]

_KEY_IN_PATH = re.compile(r"^/ext/webhook/[^/]*")


def mask_path(path: str) -> str:
    """The path with the API key of a polling URL replaced by ``***``."""
    return _KEY_IN_PATH.sub("/ext/webhook/***", path)


class PinkfishApp(LoggingApp):
    """The ASGI application over one :class:`PinkfishState`."""

    log = logging.getLogger("brew_bridge.sim.pinkfish")

    def __init__(self, state: PinkfishState) -> None:
        self.state = state
        self._api = _api_router(state)
        self._admin = _admin_router(state)

    def new_request_id(self) -> str:
        return request_id()

    def logged_path(self, path: str) -> str:
        return mask_path(path)

    def is_api(self, path: str) -> bool:
        return path.startswith("/ext/")

    def log_request(self, scope: Scope, path: str, request_id: str) -> Callable[[int], None]:
        headers = dict(scope["headers"])
        wait = headers[b"x-api-wait"].decode("latin-1") if b"x-api-wait" in headers else None
        record = Logged(self.state.clock(), scope["method"], path, request_id, wait)
        scope[RECORD] = self.state.requests.add(record)
        return record.answered

    def router(self, is_api: bool) -> ASGIApp:
        return self._api if is_api else self._admin

    def internal_error(self) -> Response:
        return error("INTERNAL_ERROR")


def create_app(state: PinkfishState) -> PinkfishApp:
    """The ASGI app serving ``state``."""
    return PinkfishApp(state)


def _route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route serving ``handlers`` by method; any other method gets a 405."""
    return route_by_method(path, handlers, _not_allowed)


def _not_allowed(request: Request, allowed: str) -> Response:
    return error("METHOD_NOT_ALLOWED", f"Use {allowed}.", {"allow": allowed})


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
    bound = admin_binder(state, admin.spec_error)
    routes = common_admin_routes(_route, bound, admin.health, admin.reset, list_logged)
    routes += [
        _route("/_sim/triggers/{trigger_id}", {"PUT": bound(admin.put_trigger)}),
        _route("/_sim/keys/{api_key}", {"PUT": bound(admin.put_key)}),
        _route("/_sim/runs", {"GET": bound(admin.list_runs)}),
        _route("/_sim/runs/{run_id}", {"PUT": bound(admin.put_run)}),
    ]
    return Router(routes, redirect_slashes=False, default=_not_found)
