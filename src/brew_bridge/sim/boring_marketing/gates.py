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

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.boring_marketing.bodies import detail
from brew_bridge.sim.boring_marketing.seed import KeySpec
from brew_bridge.sim.boring_marketing.state import BoringState, Logged, Refused
from brew_bridge.sim.brew.gates import behind_faults
from brew_bridge.sim.brew.http import Endpoint, answer

__all__ = ["RECORD", "Endpoint", "Handler", "error", "gated"]

RECORD = "boring_marketing_sim.record"  # scope key: this request's request-log entry

# (state, request, the caller's key, now) -> the answer; raises Refused to refuse
Handler = Callable[[BoringState, Request, KeySpec, float], Awaitable[Response]]


def error(status: int, message: object, headers: Mapping[str, str] | None = None) -> Response:
    return answer(status, detail(message), headers)


def gated(state: BoringState, fault_scope: str, handler: Handler) -> Endpoint:
    """``handler`` behind the faults of ``fault_scope`` and the key check."""

    async def endpoint(request: Request) -> Response:
        async def work() -> Response:
            now = state.clock()
            try:
                key = state.authenticate(request.headers.get("x-api-key"))
                return await handler(state, request, key, now)
            except Refused as refused:
                return error(refused.status, refused.detail, refused.headers)

        action = state.faults.decide(fault_scope)
        record: Logged = request.scope[RECORD]
        return await behind_faults(request, record, action, work, _json_error, _rate_limited)

    return endpoint


def _rate_limited(headers: Mapping[str, str]) -> Response:
    return error(429, "Rate limit exceeded", headers)


def _json_error(status: int, headers: Mapping[str, str]) -> Response:
    return error(status, HTTPStatus(status).phrase, headers)
