"""The ``/_sim/`` admin routes: change the Boring Marketing simulator's state while it runs.

Health, reset (optionally to a new seed), put a brand, a key or a pipeline, set the
faults, read or clear the request log, list the runs, and make a run stuck. They pass
no gates and are not logged; a bad body is a 400 ``{"detail": ...}`` naming the field.
The handlers every simulator shares (health, reset, faults,
the request log) are :mod:`brew_bridge.sim.brew.admin`'s.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.boring_marketing.bodies import run_body
from brew_bridge.sim.boring_marketing.gates import error
from brew_bridge.sim.boring_marketing.seed import (
    PipelineSpec,
    parse_brand,
    parse_key,
    parse_pipeline,
    parse_seed,
)
from brew_bridge.sim.boring_marketing.state import BoringState
from brew_bridge.sim.brew.admin import health_check, ok, read_body, resetter
from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.brew.specs import SpecError, get_bool, reject_unknown, require_mapping

__all__ = [
    "health",
    "list_runs",
    "put_brand",
    "put_key",
    "put_pipeline",
    "put_run",
    "reset",
    "spec_error",
]


health = health_check(ok)
reset = resetter(parse_seed, ok)


async def put_brand(state: BoringState, request: Request) -> Response:
    brand_id: str = request.path_params["brand_id"]
    spec = parse_brand(brand_id, await read_body(request, optional=True), "brand")
    state.brands[brand_id] = spec
    return answer(200, {"id": spec.brand_id, "name": spec.name, "domain": spec.domain})


async def put_key(state: BoringState, request: Request) -> Response:
    api_key: str = request.path_params["api_key"]
    spec = parse_key(api_key, await read_body(request, optional=True), "key")
    state.keys[api_key] = spec
    brands = list(spec.brands) if spec.brands is not None else None
    return answer(200, {"brands": brands, "revoked": spec.revoked})


async def put_pipeline(state: BoringState, request: Request) -> Response:
    endpoint: str = request.path_params["endpoint"]
    spec = parse_pipeline(endpoint, await read_body(request, optional=True), "pipeline")
    return answer(200, _pipeline_row(state.put_pipeline(spec).spec))


async def list_runs(state: BoringState, request: Request) -> Response:
    """Every run of every brand, oldest first, as the API shows it now, plus ``endpoint``,
    ``stuck`` and the fire's ``body``."""
    now = state.clock()
    return answer(200, {"data": [_run_row(state, run_id, now) for run_id in state.runs]})


async def put_run(state: BoringState, request: Request) -> Response:
    """``{"stuck": true}``: the live run stays where it is now, its ``stage_started_at``
    no longer moving, until it is canceled. A stuck run cannot be unstuck; a run at its
    end cannot get stuck (400)."""
    run_id: str = request.path_params["run_id"]
    if run_id not in state.runs:
        return error(404, "Run not found")
    spec = require_mapping(await read_body(request), "run")
    reject_unknown(spec, frozenset({"stuck"}), "run")
    if not get_bool(spec, "stuck", "run", True):
        raise SpecError("run.stuck", "a stuck run cannot be unstuck", "cancel it instead")
    now = state.clock()
    if not state.runs[run_id].stick(now):
        return error(400, f"Run is {state.runs[run_id].status(now)}: only a live run gets stuck")
    return answer(200, _run_row(state, run_id, now))


def spec_error(exc: SpecError) -> Response:
    return error(400, str(exc))


def _run_row(state: BoringState, run_id: str, now: float) -> dict[str, Any]:
    run = state.runs[run_id]
    frozen = run.frozen_at is not None and run.frozen_at <= now and run.canceled_at is None
    return {**run_body(run, now), "endpoint": run.endpoint, "stuck": frozen, "body": run.body}


def _pipeline_row(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "endpoint": spec.endpoint,
        "kind": spec.kind,
        "stages": list(spec.stages),
        "queuedMs": spec.queued_ms,
        "stageMs": {name: spec.seconds(name) * 1000.0 for name in spec.stages}
        if spec.stages
        else spec.stage_ms,
        "outcome": spec.outcome,
        "outcomes": list(spec.outcomes) if spec.outcomes is not None else None,
        "failureRate": spec.failure_rate,
        "failStage": spec.fail_stage,
        "error": spec.error,
    }
