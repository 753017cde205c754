"""``POST /webhooks/{source}``: the body read within its limits, then handed to the source.

The raw body is read as it arrives: a declared or an actual size over
``webhooks.max_body_bytes`` is answered 413 before the rest is read; a sender that has
not finished within ``webhooks.read_timeout_seconds`` gets 408; one that hangs up
mid-body gets nothing and nothing is stored. Only a whole body is verified.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from brew_bridge.sources.webhooks.source import Answer, WebhookSource

__all__ = ["webhook_routes"]


async def _read_body(request: Request, limit: int) -> bytes | Answer:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Answer:
    return Answer(413, "too_large", {"error": f"the body is over {limit} bytes"})


def webhook_routes(source: WebhookSource) -> list[Route]:
    """The Starlette routes of the webhook sources (mounted beside /metrics or alone)."""
    config = source.config

    async def receive(request: Request) -> Response:
        name = request.path_params["source"]
        began = time.perf_counter()
        if not source.knows(name):
            answer = await source.receive(name, [], b"")
        else:
            try:
                async with asyncio.timeout(config.read_timeout_seconds):
                    body = await _read_body(request, config.max_body_bytes)
            except TimeoutError:
                body = Answer(408, "timeout", {"error": "the body did not arrive in time"})
            except ClientDisconnect:
                source.count(name, Answer(499, "aborted", {}), time.perf_counter() - began)
                return Response(status_code=400)  # nobody reads it: the sender is gone
            answer = (
                body
                if isinstance(body, Answer)
                else await source.receive(name, request.headers.items(), body)
            )
        source.count(name, answer, time.perf_counter() - began)
        # An answer before the whole body was read closes the connection after it.
        headers = dict(answer.headers)
        if answer.status in (408, 413):
            headers["Connection"] = "close"
        return JSONResponse(dict(answer.body), status_code=answer.status, headers=headers)

    return [Route("/webhooks/{source}", receive, methods=["POST"])]
