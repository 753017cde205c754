"""What every Pinkfish API route passes before and after its own work.

Injected faults first (a gateway fails before Pinkfish sees the request), then the API
key, and only then the route's handler; the faults that strike after the work
(``reset``, ``errorAfterWork``, ``hangAfterWork``) act once it is done and recorded. The
fault settings and their decisions are the Brew simulator's (:mod:`brew_bridge.sim.brew.faults`);
what differs is the error body, Pinkfish's own (:func:`~.bodies.error_body`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.gates import behind_faults
from brew_bridge.sim.brew.http import Endpoint, answer
from brew_bridge.sim.pinkfish.bodies import code_for_status, error_body
from brew_bridge.sim.pinkfish.state import Logged, PinkfishState, Refused

__all__ = ["RECORD", "Endpoint", "Handler", "error", "gated"]

RECORD = "pinkfish_sim.record"  # scope key: this request's request-log entry

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
        async def work() -> Response:
            now = state.clock()
            try:
                account = state.authenticate(key_of(request))
            except Refused as refused:
                return error(refused.code)
            return await handler(state, request, account, now)

        action = state.faults.decide(fault_scope)
        record: Logged = request.scope[RECORD]
        return await behind_faults(request, record, action, work, _json_error, _rate_limited)

    return endpoint


def _rate_limited(headers: Mapping[str, str]) -> Response:
    return error("RATE_LIMITED", headers=headers)


def _json_error(status: int, headers: Mapping[str, str]) -> Response:
    _, body = error_body(code_for_status(status))
    return answer(status, body, headers)
