"""What every Pinkfish API route passes before and after its own work.

Injected faults first (a gateway fails before Pinkfish sees the request), then the API
key, and only then the route's handler; the faults that strike after the work
(``reset``, ``errorAfterWork``, ``hangAfterWork``) act once it is done and recorded. The
fault settings and their decisions are the Brew simulator's (:mod:`brew_bridge.sim.brew.faults`);
what differs is the error body, Pinkfish's own (:func:`~.bodies.error_body`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.faults import FaultAction
from brew_bridge.sim.brew.gates import AFTER_WORK, NoAnswer, after_work, hold, injected_error
from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.pinkfish.bodies import code_for_status, error_body
from brew_bridge.sim.pinkfish.state import Logged, PinkfishState, Refused

__all__ = ["RECORD", "Endpoint", "Handler", "error", "gated"]

RECORD = "pinkfish_sim.record"  # scope key: this request's request-log entry

Endpoint = Callable[[Request], Awaitable[Response]]
# (state, request, the caller's account, now) -> the answer
Handler = Callable[[PinkfishState, Request, str, float], Awaitable[Response]]


def error(
    code: str, message: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    status, body = error_body(code, message)
    return answer(status, body, headers)


def gated(
    state: PinkfishState,
    fault_scope: str,
    key_of: Callable[[Request], str | None],
    handler: Handler,
) -> Endpoint:
    """``handler`` behind the faults of ``fault_scope`` and the key ``key_of`` finds."""

    async def endpoint(request: Request) -> Response:
        record: Logged = request.scope[RECORD]
        action = state.faults.decide(fault_scope)
        if action.latency_ms:
            await asyncio.sleep(action.latency_ms / 1000.0)
        if action.kind in ("error", "rateLimit", "hang"):
            record.fault = action.kind
            early = await _before_work(request, action)
            if early is not None:
                return early
        now = state.clock()
        try:
            account = state.authenticate(key_of(request))
        except Refused as refused:
            response = error(refused.code)
        else:
            response = await handler(state, request, account, now)
        if action.kind in AFTER_WORK:
            return await _after_work(request, record, action, response)
        return response

    return endpoint


async def _before_work(request: Request, action: FaultAction) -> Response | None:
    if action.kind == "error":
        return _injected_error(action)
    if action.kind == "rateLimit":
        retry_after = str(action.retry_after or 1)
        return error("RATE_LIMITED", headers={"retry-after": retry_after})
    # hang: hold the request; a client that gives up leaves nothing done
    if await hold(request, action.seconds):
        request.scope[RECORD].status = 0
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
    _, body = error_body(code_for_status(status))
    return answer(status, body, headers)
