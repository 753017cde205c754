"""The gates every API route passes before and after its own work, in Brew's order.

Injected faults first (a gateway fails before Brew sees the request), then
authentication and brand scope, then the rate window of the route's policy, and only then
the route's handler. Post-work faults (``reset``, ``errorAfterWork``, ``hangAfterWork``)
act once the work is done and recorded.

The fault mechanics are shared with the Pinkfish and Boring Marketing gates, which give
only their own error bodies: :func:`behind_faults` (their whole fault frame),
:func:`after_work`, :func:`injected_error`, :func:`hold`, :func:`wait_disconnect` and
:func:`abort_connection`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Send

from brew_bridge.sim.brew.envelopes import api_error, code_for_status, fire_envelope
from brew_bridge.sim.brew.faults import FaultAction
from brew_bridge.sim.brew.http import ABORT, RECORD, Endpoint, Result, answer
from brew_bridge.sim.brew.logged import Logged
from brew_bridge.sim.brew.state import FAULT, STATUS, AuthRefusal, Caller, SimState
from brew_bridge.timefmt import iso_utc

__all__ = [
    "AFTER_WORK",
    "Handler",
    "NoAnswer",
    "abort_connection",
    "after_work",
    "behind_faults",
    "gated",
    "hold",
    "injected_error",
    "wait_disconnect",
]

# The fault kinds that strike once the work is done and recorded.
AFTER_WORK = frozenset({"reset", "errorAfterWork", "hangAfterWork"})

Handler = Callable[[SimState, Request, Caller, float], Awaitable[Result]]


class NoAnswer(Exception):
    """The connection is gone (reset by a fault, or the client left a hang): send nothing."""


def gated(state: SimState, fault_scope: str, policy: str, handler: Handler) -> Endpoint:
    """``handler`` behind the faults of ``fault_scope``, auth and the ``policy`` window."""
    is_fire = fault_scope == "fire"

    async def endpoint(request: Request) -> Response:
        action = state.faults.decide(fault_scope)
        if action.kind != "none":
            early = await _before_work(state, request, action, policy)
            if early is not None:
                return early
        now = state.clock()
        headers = request.headers
        caller = state.authenticate(*_credentials(headers), headers.get("x-brand-id"))
        if isinstance(caller, AuthRefusal):
            response = _refuse(caller, is_fire, request, now)
        else:
            decision = state.limiter.check(caller.api_key, policy, now)
            if not decision.allowed:
                status, body = api_error("RATE_LIMITED", retry_after=decision.retry_after)
                response = answer(status, body, decision.headers())
            else:
                status, body = await handler(state, request, caller, now)
                rate_headers = decision.headers() if 200 <= status <= 202 else None
                response = answer(status, body, rate_headers)
        if action.kind in AFTER_WORK:
            return await _after_work(request, action, response)
        return response

    return endpoint


def _credentials(headers: Mapping[str, str]) -> tuple[str | None, bool]:
    """The API key sent (``Authorization: Bearer`` first, else ``X-API-Key``) and whether
    the Authorization header was malformed (another scheme: an invalid key, not a missing one).
    """
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None, True
        return token.strip() or None, False
    return headers.get("x-api-key"), False


def _refuse(refusal: AuthRefusal, is_fire: bool, request: Request, now: float) -> Response:
    if is_fire and refusal.code == "BRAND_SCOPE_MISMATCH":
        # The fire pipeline answers a brand mismatch in its own envelope (brew-api.md §2.2).
        body = fire_envelope(
            success=False,
            status="forbidden",
            code="BRAND_SCOPE_MISMATCH",
            message="This API key is scoped to a different brand than the one requested.",
            received_at=iso_utc(now),
            trigger_event_id=request.path_params.get("trigger_event_id"),
        )
        return answer(403, body)
    status, body = api_error(refusal.code, param=refusal.param)
    return answer(status, body)


async def _before_work(
    state: SimState, request: Request, action: FaultAction, policy: str
) -> Response | None:
    """Latency, and the faults that stop a request before Brew does anything."""
    if action.latency_ms:
        await asyncio.sleep(action.latency_ms / 1000.0)
    record = request.scope.get(RECORD)
    kind = action.kind
    if kind in ("none", "latency", "reset", "errorAfterWork", "hangAfterWork"):
        return None
    if record is not None:
        record[FAULT] = kind
    if kind == "error":
        return _injected_error(action)
    if kind == "rateLimit":
        retry_after = action.retry_after or 1
        now = state.clock()
        status, body = api_error("RATE_LIMITED", retry_after=retry_after)
        return answer(
            status,
            body,
            {
                "retry-after": str(retry_after),
                "x-ratelimit-limit": str(state.limiter.policies[policy].limit),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(now + retry_after + 0.999)),
            },
        )
    # hang: hold the request; a client that gives up leaves nothing done
    if await hold(request, action.seconds):
        if record is not None:
            record[STATUS] = 0
        raise NoAnswer
    return None


async def _after_work(request: Request, action: FaultAction, response: Response) -> Response:
    record = request.scope.get(RECORD)

    def set_status(status: int) -> None:
        if record is not None:
            record[STATUS] = status

    if record is not None:
        record[FAULT] = action.kind
    set_status(response.status_code)
    return await after_work(request, action, response, _injected_error, set_status)


def _injected_error(action: FaultAction) -> Response:
    return injected_error(action, _error_envelope)


def _error_envelope(status: int, headers: Mapping[str, str]) -> Response:
    _, body = api_error(code_for_status(status))
    return answer(status, body, headers)


async def behind_faults(
    request: Request,
    record: Logged,
    action: FaultAction,
    work: Callable[[], Awaitable[Response]],
    json_error: Callable[[int, Mapping[str, str]], Response],
    rate_limited: Callable[[Mapping[str, str]], Response],
) -> Response:
    """``work`` behind the fault ``action``, logged on ``record`` (the Pinkfish and Boring
    Marketing gates): latency, then an injected error (``json_error`` renders its JSON
    body), a 429 (``rate_limited``, given its ``retry-after``) or a hang instead of the
    work, or the faults that strike after it."""
    if action.latency_ms:
        await asyncio.sleep(action.latency_ms / 1000.0)
    if action.kind in ("error", "rateLimit", "hang"):
        record.fault = action.kind
        if action.kind == "error":
            return injected_error(action, json_error)
        if action.kind == "rateLimit":
            return rate_limited({"retry-after": str(action.retry_after or 1)})
        # hang: hold the request; a client that gives up leaves nothing done
        if await hold(request, action.seconds):
            record.status = 0
            raise NoAnswer
    response = await work()
    if action.kind not in AFTER_WORK:
        return response
    record.fault = action.kind
    record.status = response.status_code

    def injected(action: FaultAction) -> Response:
        return injected_error(action, json_error)

    return await after_work(request, action, response, injected, record.set_status)


async def after_work(
    request: Request,
    action: FaultAction,
    response: Response,
    injected: Callable[[FaultAction], Response],
    set_status: Callable[[int], None],
) -> Response:
    """The faults that strike once the work is done and recorded (the caller has logged
    the fault and the work's status): ``errorAfterWork`` answers ``injected``'s error
    instead (its status goes to ``set_status``), ``hangAfterWork`` holds the answer,
    ``reset`` drops the connection."""
    if action.kind == "errorAfterWork":
        error = injected(action)
        set_status(error.status_code)
        return error
    if action.kind == "hangAfterWork":
        if await hold(request, action.seconds):
            raise NoAnswer
        return response
    abort_connection(request.scope[ABORT])  # reset: the work is done, no answer comes
    await wait_disconnect(request.receive, 5.0)
    raise NoAnswer


def injected_error(
    action: FaultAction, json_error: Callable[[int, Mapping[str, str]], Response]
) -> Response:
    """The answer of an injected ``error`` fault: an HTML page, an empty body, or (the
    default) the API's own JSON error for the status, which ``json_error`` renders."""
    headers = {"retry-after": str(action.retry_after)} if action.retry_after is not None else {}
    if action.body == "html":
        text = f"<html><body><h1>{action.status} Service Error</h1></body></html>"
        return Response(text, action.status, headers, media_type="text/html")
    if action.body == "empty":
        return Response(b"", action.status, headers)
    return json_error(action.status, headers)


async def hold(request: Request, seconds: float) -> bool:
    """Read the whole request, then hold it up to ``seconds``; True if the client hung up."""
    await request.body()
    return await wait_disconnect(request.receive, seconds)


async def wait_disconnect(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client to hang up; True if it did."""

    async def until_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_gone(), seconds)
    except TimeoutError:
        return False
    return True


def abort_connection(send: Send) -> None:
    """Drop the connection under this request with a TCP reset and no answer.

    uvicorn's ``send`` is a bound method of its request cycle, which holds the asyncio
    transport; ``SO_LINGER`` 0 turns the close into an RST, so the client sees a reset
    (not a clean EOF) just as when a load balancer drops a connection mid-request.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the ASGI server does not expose its transport; cannot inject a reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
