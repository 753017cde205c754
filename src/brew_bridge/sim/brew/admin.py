"""The ``/_sim/`` admin routes: change the simulator's state while it runs.

Health, reset (optionally to a new seed), put a trigger or a key, read or set the rate
limits, set the faults, and read or clear the request log. They pass no gates; a bad
body is a 400 naming the field, in the standard error envelope.

The handlers every simulator serves alike are here for all three: :func:`read_body`,
:func:`put_faults`, :func:`clear_requests`, :func:`list_logged` (a log of
:class:`~.logged.Logged` entries), and the factories :func:`health_check` and
:func:`resetter`. A handler raises :class:`SpecError` for a bad body; the app's
:func:`~.asgi.admin_binder` answers it with that simulator's 400.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.envelopes import api_error
from brew_bridge.sim.brew.faults import Faults, parse_faults
from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.brew.seed import parse_key, parse_limits, parse_seed, parse_trigger
from brew_bridge.sim.brew.specs import SpecError
from brew_bridge.sim.brew.state import (
    AT,
    BODY,
    FAULT,
    KEY,
    METHOD,
    PATH,
    QUERY,
    REQUEST_ID,
    STATUS,
    SimState,
)
from brew_bridge.sim.brew.triggers import trigger_row

__all__ = [
    "AdminState",
    "LoggedState",
    "clear_requests",
    "get_limits",
    "health",
    "health_check",
    "list_logged",
    "list_requests",
    "ok",
    "put_faults",
    "put_key",
    "put_limits",
    "put_trigger",
    "read_body",
    "reset",
    "resetter",
    "spec_error",
]


class _Log(Protocol):
    def clear(self) -> None: ...


class _Rows(Protocol):
    def row(self) -> dict[str, Any]: ...


class AdminState(Protocol):
    """What every simulator's state has for the shared admin routes."""

    faults: Faults

    @property
    def requests(self) -> _Log: ...

    def reset(self, seed: Any = None) -> None: ...


class LoggedState(Protocol):
    @property
    def requests(self) -> Iterable[_Rows]: ...


S = TypeVar("S", bound=AdminState)
L = TypeVar("L", bound=LoggedState)


def ok(state: object) -> dict[str, Any]:
    return {"ok": True}


def health_check(
    status: Callable[[S], dict[str, Any]],
) -> Callable[[S, Request], Awaitable[Response]]:
    """``GET /_sim/health``, answered with ``status``."""

    async def health(state: S, request: Request) -> Response:
        return answer(200, status(state))

    return health


def resetter(
    parse: Callable[[Any], object], status: Callable[[S], dict[str, Any]]
) -> Callable[[S, Request], Awaitable[Response]]:
    """``POST /_sim/reset``: back to the seed (with a body, to the seed ``parse`` reads
    from it), answered with ``status``."""

    async def reset(state: S, request: Request) -> Response:
        raw = await read_body(request, optional=True)
        state.reset(parse(raw) if raw is not None else None)
        return answer(200, status(state))

    return reset


async def put_faults(state: AdminState, request: Request) -> Response:
    state.faults = parse_faults(await read_body(request, optional=True) or {})
    return answer(200, {"ok": True})


async def clear_requests(state: AdminState, request: Request) -> Response:
    state.requests.clear()
    return answer(200, {"ok": True})


async def list_logged(state: L, request: Request) -> Response:
    """The request log of :class:`~.logged.Logged` entries, oldest first."""
    return answer(200, {"data": [entry.row() for entry in state.requests]})


async def read_body(request: Request, *, optional: bool = False) -> Any:
    """The JSON body; None when it is empty and ``optional``."""
    raw = await request.body()
    if not raw and optional:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError("body", "not valid JSON", "send a JSON object") from exc


def _status(state: SimState) -> dict[str, Any]:
    return {"ok": True, "apiShape": state.api_shape}


health = health_check(_status)
reset = resetter(parse_seed, _status)


async def put_trigger(state: SimState, request: Request) -> Response:
    trigger_event_id: str = request.path_params["trigger_event_id"]
    spec = parse_trigger(trigger_event_id, await read_body(request), "trigger")
    row = trigger_row(state.put_trigger(spec))
    row["automations"] = [
        {"automationId": a.automation_id, "published": a.published, "outcome": a.outcome}
        for a in spec.automations
    ]
    return answer(200, row)


async def put_key(state: SimState, request: Request) -> Response:
    api_key: str = request.path_params["api_key"]
    spec = parse_key(api_key, await read_body(request, optional=True), "key")
    state.keys[api_key] = spec
    brands = list(spec.brands) if spec.brands is not None else None
    return answer(200, {"brandId": spec.brand_id, "brands": brands, "revoked": spec.revoked})


async def get_limits(state: SimState, request: Request) -> Response:
    return answer(200, _limits_body(state))


async def put_limits(state: SimState, request: Request) -> Response:
    policies = parse_limits(await read_body(request), "limits")
    state.limiter.configure(policies)
    return answer(200, _limits_body(state))


async def list_requests(state: SimState, request: Request) -> Response:
    data = [
        {
            "at": entry[AT],
            "method": entry[METHOD],
            "path": entry[PATH],
            "query": dict(parse_qsl(entry[QUERY].decode("latin-1"), keep_blank_values=True)),
            "idempotencyKey": entry[KEY],
            "body": entry[BODY],
            "status": entry[STATUS],
            "fault": entry[FAULT],
            "requestId": entry[REQUEST_ID],
        }
        for entry in state.requests
    ]
    return answer(200, {"data": data})


def spec_error(exc: SpecError) -> Response:
    status, body = api_error("INVALID_REQUEST", param=exc.path, message=str(exc))
    return answer(status, body)


def _limits_body(state: SimState) -> dict[str, Any]:
    return {
        name: {"limit": p.limit, "windowSeconds": p.window_seconds}
        for name, p in state.limiter.policies.items()
    }
