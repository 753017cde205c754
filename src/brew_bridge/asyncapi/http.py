"""``GET /asyncapi.json``: the document, built on the first request, then served as it is.

Only the JSON: no HTML page (it would load scripts from a CDN) and no "try it out"
route, which would publish to the real brokers on behalf of whoever can reach the port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["PATH", "asyncapi_routes"]

PATH = "/asyncapi.json"


def asyncapi_routes(document: Callable[[], Mapping[str, Any]]) -> list[BaseRoute]:
    """The route serving ``document()``, built and rendered on the first request (it
    never changes while running; building it loads FastStream, which a start need not)."""
    rendered: list[bytes] = []

    async def asyncapi_json(_request: Request) -> Response:
        if not rendered:
            rendered.append(bytes(JSONResponse(dict(document())).body))
        return Response(rendered[0], media_type="application/json")

    return [Route(PATH, asyncapi_json, methods=["GET"])]
