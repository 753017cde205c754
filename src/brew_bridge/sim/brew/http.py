"""What every simulator route shares to read a request and write its answer.

JSON answers, the ``INVALID_REQUEST`` refusals of Brew's strict bodies and queries,
pagination (``limit`` and opaque cursors), a route that answers 405 for a method it does
not serve, and the 404 for a path no route matches. The request's log entry rides in the
ASGI scope under :data:`RECORD` (set by :mod:`brew_bridge.sim.brew.app`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from brew_bridge.sim.brew.envelopes import api_error
from brew_bridge.sim.brew.state import BODY

__all__ = [
    "ABORT",
    "MAX_KEY",
    "RECORD",
    "Endpoint",
    "Result",
    "answer",
    "cursor",
    "invalid",
    "is_string",
    "key_problem",
    "not_found",
    "page",
    "page_limit",
    "read_cursor",
    "read_json",
    "route",
    "route_by_method",
    "strict",
    "strict_query",
]

RECORD = "brew_sim.record"  # scope key: this request's request-log entry (API routes only)
ABORT = "brew_sim.abort"  # scope key: the server's own ``send``, to reset the connection
MAX_KEY = 100  # the longest idempotency key Brew takes
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

Result = tuple[int, Any]  # (HTTP status, JSON body)
Endpoint = Callable[[Request], Awaitable[Response]]


def answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer."""
    return JSONResponse(body, status, dict(headers) if headers else None)


def invalid(param: str, message: str | None = None) -> Result:
    """The 400 ``INVALID_REQUEST`` naming ``param``."""
    return api_error("INVALID_REQUEST", param=param, message=message)


async def read_json(request: Request) -> tuple[Any, Result | None]:
    """The parsed body, or the 400 a malformed one gets (refused before any pipeline)."""
    raw = await request.body()
    if not raw:
        return None, invalid("body", "The request body must be a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, invalid("body", "The request body is not valid JSON.")
    record = request.scope.get(RECORD)
    if record is not None:
        record[BODY] = body
    if not isinstance(body, dict):
        return body, invalid("body", "The request body must be a JSON object.")
    return body, None


def strict(body: Mapping[str, Any], allowed: frozenset[str]) -> Result | None:
    """Brew's bodies are strict: an unknown key (``brandId``, ``metadata``…) is a 400."""
    for key in body:
        if key not in allowed:
            return invalid(key, f'Unknown field "{key}" in the request body.')
    return None


def strict_query(query: QueryParams, allowed: frozenset[str]) -> Result | None:
    """So are its queries: an unknown parameter is a 400."""
    for key in query:
        if key not in allowed:
            return invalid(key, f'Unknown query parameter "{key}".')
    return None


def is_string(value: object, lo: int, hi: int) -> bool:
    """``value`` is a string of ``lo`` to ``hi`` characters."""
    return isinstance(value, str) and lo <= len(value) <= hi


def key_problem(key: str) -> Result | None:
    """The 400 an ``Idempotency-Key`` header of the wrong length gets."""
    if not 1 <= len(key) <= MAX_KEY:
        return invalid("idempotencyKey", f"Idempotency-Key must be 1 to {MAX_KEY} characters.")
    return None


def cursor(kind: str, position: int) -> str:
    """The opaque cursor of a page of ``kind`` that goes on from ``position``."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def read_cursor(kind: str, value: str) -> int | None:
    """The position in a cursor of ``kind``; None for one this API did not hand out."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != kind or not number.isdigit():
        return None
    return int(number)


def page(data: list[Any], limit: int, next_cursor: str | None) -> dict[str, Any]:
    """A list answer: ``data`` and its pagination (more to come when there is a cursor)."""
    return {
        "data": data,
        "pagination": {"limit": limit, "cursor": next_cursor, "hasMore": next_cursor is not None},
    }


def page_limit(query: QueryParams) -> int | Result:
    """The ``limit`` query parameter (default 100), or the 400 for a bad one."""
    raw = query.get("limit")
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        return invalid("limit", "limit must be an integer from 1 to 100.")
    return int(raw)


def route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route serving ``handlers`` by method; any other method gets Brew's 405."""
    return route_by_method(path, handlers, _not_allowed)


def _not_allowed(request: Request, allowed: str) -> Response:
    status, body = api_error(
        "METHOD_NOT_ALLOWED",
        message=f"{request.method} is not allowed here; use {allowed}.",
    )
    return answer(status, body, {"allow": allowed})


def route_by_method(
    path: str,
    handlers: Mapping[str, Endpoint],
    not_allowed: Callable[[Request, str], Response],
) -> Route:
    """A route serving ``handlers`` by method; any other method gets what ``not_allowed``
    answers for it and the methods allowed (``"GET, PUT"``)."""

    async def endpoint(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return not_allowed(request, ", ".join(handlers))
        return await handler(request)

    return Route(path, endpoint, methods=_METHODS)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI answer for a path no route matches."""
    status, body = api_error("NOT_FOUND", message=f"No route for {scope['path']}.")
    await answer(status, body)(scope, receive, send)
