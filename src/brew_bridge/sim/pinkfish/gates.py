"""What every Pinkfish API route passes before and after its own work.

Injected faults first (a gateway fails before Pinkfish sees the request), then the API
key, and only then the route's handler; the faults that strike after the work
(``reset``, ``errorAfterWork``, ``hangAfterWork``) act once it is done and recorded. The
fault settings and their decisions are the Brew simulator's (:mod:`brew_bridge.sim.brew.faults`);
what differs is the error body, Pinkfish's own (:func:`~.bodies.error_body`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.faults import FaultAction
from brew_bridge.sim.brew.gates import NoAnswer, _abort_connection, _wait_disconnect
from brew_bridge.sim.brew.http import ABORT, answer
from brew_bridge.sim.pinkfish.bodies import code_for_status, error_body
from brew_bridge.sim.pinkfish.state import Logged, PinkfishState, Refused

__all__ = ["RECORD", "Endpoint", "Handler", "error", "gated"]

RECORD = "pinkfish_sim.record"  # scope key: this request's request-log entry
_AFTER_WORK = frozenset({"reset", "errorAfterWork", "hangAfterWork"})

Endpoint = Callable[[Request], Awaitable[Response]]
# (state, request, the caller's account, now) -> the answer
Handler = Callable[[PinkfishState, Request, str, float], Awaitable[Response]]


def error(code: str, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
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
        if action.kind in _AFTER_WORK:
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
    await request.body()
    if await _wait_disconnect(request.receive, action.seconds):
        request.scope[RECORD].status = 0
        raise NoAnswer
    return None


async def _after_work(
    request: Request, record: Logged, action: FaultAction, response: Response
) -> Response:
    record.fault = action.kind
    record.status = response.status_code
    if action.kind == "errorAfterWork":
        injected = _injected_error(action)
        record.status = injected.status_code
        return injected
    if action.kind == "hangAfterWork":
        await request.body()
        if await _wait_disconnect(request.receive, action.seconds):
            raise NoAnswer
        return response
    _abort_connection(request.scope[ABORT])
    await _wait_disconnect(request.receive, 5.0)
    raise NoAnswer


def _injected_error(action: FaultAction) -> Response:
    headers = {"retry-after": str(action.retry_after)} if action.retry_after is not None else {}
    if action.body == "html":
        text = f"<html><body><h1>{action.status} Service Error</h1></body></html>"
        return Response(text, action.status, headers, media_type="text/html")
    if action.body == "empty":
        return Response(b"", action.status, headers)
    _, body = error_body(code_for_status(action.status))
    return answer(action.status, body, headers)
