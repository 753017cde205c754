"""The three routes of the seed document: fire a trigger, read a run's status, its results.

Each runs behind :func:`~brew_bridge.sim.pinkfish.gates.gated` (faults, the API key):
the fire reads its key from ``X-API-KEY``, the polling routes from their path.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.pinkfish.bodies import results_body, status_body
from brew_bridge.sim.pinkfish.gates import RECORD, error
from brew_bridge.sim.pinkfish.state import PinkfishState, Run

__all__ = ["fire", "header_key", "path_key", "results", "status"]


def header_key(request: Request) -> str | None:
    return request.headers.get("x-api-key")


def path_key(request: Request) -> str | None:
    key: str = request.path_params["api_key"]
    return key


async def fire(state: PinkfishState, request: Request, account: str, now: float) -> Response:
    """``POST /ext/triggers/{triggerId}``: start a run, answer its ids in headers only.

    The body is the workflow's input: any JSON, or nothing. ``x-api-wait: true`` (the
    synchronous pattern) is refused: this simulator serves the async one.
    """
    raw = await request.body()
    if raw:
        try:
            request.scope[RECORD].body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error("INVALID_REQUEST", "The request body is not valid JSON.")
    trigger = state.trigger(account, request.path_params["trigger_id"])
    if trigger is None:
        return error("TRIGGER_NOT_FOUND")
    wait = (request.headers.get("x-api-wait") or "false").strip().lower()
    if wait == "true":
        return error("SYNC_NOT_SUPPORTED")
    if wait != "false":
        return error("INVALID_REQUEST", 'x-api-wait must be "true" or "false".')
    run = state.fire(account, trigger, now)
    return Response(b"", 200, {"X-Pf-Run-Id": run.run_id, "X-Pf-Automation-Id": run.automation_id})


def _run(state: PinkfishState, request: Request, account: str) -> Run | None:
    params = request.path_params
    return state.run(account, params["automation_id"], params["run_id"])


async def status(state: PinkfishState, request: Request, account: str, now: float) -> Response:
    """``GET /ext/webhook/{apiKey}/runs/{automationId}/{runId}/status``."""
    run = _run(state, request, account)
    if run is None:
        return error("RUN_NOT_FOUND")
    return answer(200, status_body(run, now))


async def results(state: PinkfishState, request: Request, account: str, now: float) -> Response:
    """``GET …/results``: at any status (the steps that ended so far)."""
    run = _run(state, request, account)
    if run is None:
        return error("RUN_NOT_FOUND")
    return answer(200, results_body(run, now))
