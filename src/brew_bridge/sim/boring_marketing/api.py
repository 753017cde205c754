"""The API routes of seed 004, behind :func:`~brew_bridge.sim.boring_marketing.gates.gated`.

* ``POST /brands/{brand_id}/<endpoint>`` (the nine pipeline endpoints): an optional JSON
  object body (the pipeline's options, recorded as sent); ``202 {run_id, status:
  "queued"}``, or ``409`` while the brand has a run in progress, with its id in
  ``X-Running-Run-Id``;
* ``GET /brands/{brand_id}/runs/{run_id}``: the run object; ``GET /brands/{brand_id}/runs``:
  ``{brand_id, total, runs}``, newest first, not paged;
* ``POST /brands/{brand_id}/runs/{run_id}/cancel``: a live run is marked ``failed``
  (``200 {run_id, status: "failed", cancelled: true}``); one at its end is a 400.

An unknown brand (or one the key may not act for) and an unknown run are 404.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.boring_marketing.bodies import accepted, canceled, run_body, runs_body
from brew_bridge.sim.boring_marketing.gates import RECORD, Handler
from brew_bridge.sim.boring_marketing.seed import KeySpec
from brew_bridge.sim.boring_marketing.state import BoringState, Refused
from brew_bridge.sim.brew.http import answer

__all__ = ["cancel_run", "fire", "get_run", "list_runs"]


async def _options(request: Request) -> Any:
    """The fire's body: nothing, or a JSON object (FastAPI's 422 for anything else)."""
    raw = await request.body()
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        problem = {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}
        raise Refused(422, [problem]) from None
    request.scope[RECORD].body = body
    if not isinstance(body, dict):
        problem = {
            "type": "dict_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary",
        }
        raise Refused(422, [problem])
    return body


def fire(endpoint: str) -> Handler:
    """The handler of one pipeline endpoint."""

    async def handler(state: BoringState, request: Request, key: KeySpec, now: float) -> Response:
        brand_id = state.brand(key, request.path_params["brand_id"])
        body = await _options(request)
        return answer(202, accepted(state.fire(brand_id, endpoint, body, now)))

    return handler


async def get_run(state: BoringState, request: Request, key: KeySpec, now: float) -> Response:
    brand_id = state.brand(key, request.path_params["brand_id"])
    return answer(200, run_body(state.run(brand_id, request.path_params["run_id"]), now))


async def list_runs(state: BoringState, request: Request, key: KeySpec, now: float) -> Response:
    brand_id = state.brand(key, request.path_params["brand_id"])
    return answer(200, runs_body(brand_id, state.runs_of(brand_id), now))


async def cancel_run(state: BoringState, request: Request, key: KeySpec, now: float) -> Response:
    brand_id = state.brand(key, request.path_params["brand_id"])
    run = state.run(brand_id, request.path_params["run_id"])
    state.cancel(run, now)
    return answer(200, canceled(run))
