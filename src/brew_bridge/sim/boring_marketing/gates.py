"""What every Boring Marketing API route passes before and after its own work.

Injected faults first (a gateway fails before the API sees the request), then the
``X-API-Key``, and only then the route's handler; the faults that strike after the work
(``reset``, ``errorAfterWork``, ``hangAfterWork``) act once it is done and recorded. The
fault settings and decisions are the Brew simulator's
(:mod:`brew_bridge.sim.brew.faults`); the bodies are FastAPI's ``{"detail": ...}``. The
document names no rate limit, so a 429 is only ever an injected one (``rateLimit``,
with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.boring_marketing.bodies import detail
from brew_bridge.sim.boring_marketing.seed import KeySpec
from brew_bridge.sim.boring_marketing.state import BoringState, Logged, Refused
from brew_bridge.sim.brew.faults import FaultAction
from brew_bridge.sim.brew.gates import AFTER_WORK, NoAnswer, after_work, hold, injected_error
from brew_bridge.sim.brew.http import answer

__all__ = ["RECORD", "Endpoint", "Handler", "error", "gated"]

RECORD = "boring_marketing_sim.record"  # scope key: this request's request-log entry

Endpoint = Callable[[Request], Awaitable[Response]]
# (state, request, the caller's key, now) -> the answer; raises Refused to refuse
Handler = Callable[[BoringState, Request, KeySpec, float], Awaitable[Response]]


def error(status: int, message: object, headers: Mapping[str, str] | None = None) -> Response:
    return answer(status, detail(message), headers)


def gated(state: BoringState, fault_scope: str, handler: Handler) -> Endpoint:
    """``handler`` behind the faults of ``fault_scope`` and the key check."""

    async def endpoint(request: Request) -> Response:
        record: Logged = request.scope[RECORD]
        action = state.faults.decide(fault_scope)
        if action.latency_ms:
            await asyncio.sleep(action.latency_ms / 1000.0)
        if action.kind in ("error", "rateLimit", "hang"):
            record.fault = action.kind
            early = await _before_work(request, record, action)
            if early is not None:
                return early
        now = state.clock()
        try:
            key = state.authenticate(request.headers.get("x-api-key"))
            response = await handler(state, request, key, now)
        except Refused as refused:
            response = error(refused.status, refused.detail, refused.headers)
        if action.kind in AFTER_WORK:
            return await _after_work(request, record, action, response)
        return response

    return endpoint


async def _before_work(request: Request, record: Logged, action: FaultAction) -> Response | None:
    if action.kind == "error":
        return _injected_error(action)
    if action.kind == "rateLimit":
        return error(429, "Rate limit exceeded", {"retry-after": str(action.retry_after or 1)})
    # hang: hold the request; a client that gives up leaves nothing done
    if await hold(request, action.seconds):
        record.status = 0
        raise NoAnswer
    return None


async def _after_work(
    request: Request, record: Logged, action: FaultAction, response: Response
) -> Response:
    record.fault = action.kind
    record.status = response.status_code
    return await after_work(request, action, response, _injected_error, record.set_status)


def _injected_error(action: FaultAction) -> Response:
    return injected_error(action, _json_error)


def _json_error(status: int, headers: Mapping[str, str]) -> Response:
    return error(status, HTTPStatus(status).phrase, headers)
