"""``GET /asyncapi.json``: the document, built once at start, served as it is.

Only the JSON: no HTML page (it would load scripts from a CDN) and no "try it out"
route, which would publish to the real brokers on behalf of whoever can reach the port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["PATH", "asyncapi_routes"]

PATH = "/asyncapi.json"


def asyncapi_routes(document: Mapping[str, Any]) -> list[BaseRoute]:
    """The route serving ``document`` (rendered once: it never changes while running)."""
    body = JSONResponse(dict(document)).body

    async def asyncapi_json(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    return [Route(PATH, asyncapi_json, methods=["GET"])]
