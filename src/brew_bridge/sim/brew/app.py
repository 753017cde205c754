"""The simulator's HTTP face: the ASGI application and its route tables.

:class:`SimApp` is the ASGI application. Around every request it mints the
``x-request-id`` (``req_`` + 32 hex), records API requests in the request log, and turns
an unexpected exception into a standard 500 envelope. Each API route runs behind the
gates of :mod:`~brew_bridge.sim.brew.gates` (faults, auth, rate window); the handlers
live by resource in :mod:`~brew_bridge.sim.brew.fire`, :mod:`~brew_bridge.sim.brew.runs`
and :mod:`~brew_bridge.sim.brew.triggers`, the ``/_sim/`` routes in
:mod:`~brew_bridge.sim.brew.admin`.

Routes are served in one of two API shapes (brew-api.md §11): ``9.3`` (default) or
``10``; the shape is read per request, so ``POST /_sim/reset`` with a new seed can
switch it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Scope

from brew_bridge.sim.brew import admin
from brew_bridge.sim.brew.asgi import LoggingApp, admin_binder, common_admin_routes
from brew_bridge.sim.brew.envelopes import api_error
from brew_bridge.sim.brew.fire import fire, readiness, ready
from brew_bridge.sim.brew.gates import Handler, gated
from brew_bridge.sim.brew.http import RECORD, Endpoint, answer, not_found, route
from brew_bridge.sim.brew.runs import cancel_patch, cancel_post, get_run, list_runs
from brew_bridge.sim.brew.state import STATUS, SimState, new_id
from brew_bridge.sim.brew.triggers import create_trigger, get_trigger, list_triggers

__all__ = ["SimApp", "create_app"]


class SimApp(LoggingApp):
    """The ASGI application over one :class:`SimState`."""

    log = logging.getLogger("brew_bridge.sim")
    serves_lifespan = True

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._routers = {"9.3": _api_router(state, "9.3"), "10": _api_router(state, "10")}
        self._admin = _admin_router(state)

    def new_request_id(self) -> str:
        return new_id("req_", 16)  # req_ + 32 lowercase hex

    def is_api(self, path: str) -> bool:
        return path.startswith("/api/") or path == "/api"

    def log_request(self, scope: Scope, path: str, request_id: str) -> Callable[[int], None]:
        key = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                key = value.decode("latin-1")
                break
        state = self.state
        record = state.requests.start(
            state.clock(), scope["method"], path, scope["query_string"], key, request_id
        )
        scope[RECORD] = record

        def on_status(status: int) -> None:
            if record[STATUS] is None:
                record[STATUS] = status

        return on_status

    def router(self, is_api: bool) -> ASGIApp:
        return self._routers[self.state.api_shape] if is_api else self._admin

    def internal_error(self) -> Response:
        status, body = api_error("INTERNAL_ERROR")
        return answer(status, body)


def create_app(state: SimState) -> SimApp:
    """The ASGI app serving ``state``."""
    return SimApp(state)


def _api_router(state: SimState, shape: str) -> Router:
    def api(fault_scope: str, policy: str, handler: Handler) -> Endpoint:
        return gated(state, fault_scope, policy, handler)

    fire_path = "/api/v1/automations/triggers/{trigger_event_id:path}/fire"
    routes = [
        route(
            fire_path,
            {"POST": api("fire", "automation.runs.write", fire)}
            | ({"GET": api("read", "triggers.read", ready)} if shape == "9.3" else {}),
        ),
        route(
            "/api/v1/automations/triggers",
            {
                "GET": api("read", "triggers.read", list_triggers),
                "POST": api("read", "triggers.write", create_trigger),
            },
        ),
        route(
            "/api/v1/automations/runs",
            {"GET": api("read", "automation.runs.read", list_runs)}
            | (
                {"PATCH": api("read", "automation.runs.read", cancel_patch)}
                if shape == "9.3"
                else {}
            ),
        ),
    ]
    if shape == "10":
        routes += [
            route(
                "/api/v1/automations/triggers/{trigger_event_id:path}/readiness",
                {"GET": api("read", "triggers.read", readiness)},
            ),
            route(
                "/api/v1/automations/triggers/{trigger_event_id:path}",
                {"GET": api("read", "triggers.read", get_trigger)},
            ),
            route(
                "/api/v1/automations/runs/{run_id}/cancel",
                {"POST": api("read", "automation.runs.read", cancel_post)},
            ),
            route(
                "/api/v1/automations/runs/{run_id}",
                {"GET": api("read", "automation.runs.read", get_run)},
            ),
        ]
    return Router(routes, redirect_slashes=False, default=not_found)


def _admin_router(state: SimState) -> Router:
    bound = admin_binder(state, admin.spec_error)
    routes = common_admin_routes(route, bound, admin.health, admin.reset, admin.list_requests)
    routes += [
        route("/_sim/triggers/{trigger_event_id:path}", {"PUT": bound(admin.put_trigger)}),
        route("/_sim/keys/{api_key:path}", {"PUT": bound(admin.put_key)}),
        route("/_sim/limits", {"GET": bound(admin.get_limits), "PUT": bound(admin.put_limits)}),
    ]
    return Router(routes, redirect_slashes=False, default=not_found)
