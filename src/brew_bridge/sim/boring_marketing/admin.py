"""The ``/_sim/`` admin routes: change the Boring Marketing simulator's state while it runs.

Health, reset (optionally to a new seed), put a brand, a key or a pipeline, set the
faults, read or clear the request log, list the runs, and make a run stuck. They pass
no gates and are not logged; a bad body is a 400 ``{"detail": ...}`` naming the field.
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
from brew_bridge.sim.brew.admin import _body
from brew_bridge.sim.brew.faults import parse_faults
from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.brew.specs import SpecError, get_bool, reject_unknown, require_mapping

__all__ = [
    "clear_requests",
    "health",
    "list_requests",
    "list_runs",
    "put_brand",
    "put_faults",
    "put_key",
    "put_pipeline",
    "put_run",
    "reset",
]


async def health(state: BoringState, request: Request) -> Response:
    return answer(200, {"ok": True})


async def reset(state: BoringState, request: Request) -> Response:
    try:
        raw = await _body(request, optional=True)
        seed = parse_seed(raw) if raw is not None else None
    except SpecError as exc:
        return _spec_error(exc)
    state.reset(seed)
    return answer(200, {"ok": True})


async def put_brand(state: BoringState, request: Request) -> Response:
    brand_id: str = request.path_params["brand_id"]
    try:
        spec = parse_brand(brand_id, await _body(request, optional=True), "brand")
    except SpecError as exc:
        return _spec_error(exc)
    state.brands[brand_id] = spec
    return answer(200, {"id": spec.brand_id, "name": spec.name, "domain": spec.domain})


async def put_key(state: BoringState, request: Request) -> Response:
    api_key: str = request.path_params["api_key"]
    try:
        spec = parse_key(api_key, await _body(request, optional=True), "key")
    except SpecError as exc:
        return _spec_error(exc)
    state.keys[api_key] = spec
    brands = list(spec.brands) if spec.brands is not None else None
    return answer(200, {"brands": brands, "revoked": spec.revoked})


async def put_pipeline(state: BoringState, request: Request) -> Response:
    endpoint: str = request.path_params["endpoint"]
    try:
        spec = parse_pipeline(endpoint, await _body(request, optional=True), "pipeline")
    except SpecError as exc:
        return _spec_error(exc)
    return answer(200, _pipeline_row(state.put_pipeline(spec).spec))


async def put_faults(state: BoringState, request: Request) -> Response:
    try:
        faults = parse_faults(await _body(request, optional=True) or {})
    except SpecError as exc:
        return _spec_error(exc)
    state.faults = faults
    return answer(200, {"ok": True})


async def list_requests(state: BoringState, request: Request) -> Response:
    return answer(200, {"data": [entry.row() for entry in state.requests]})


async def clear_requests(state: BoringState, request: Request) -> Response:
    state.requests.clear()
    return answer(200, {"ok": True})


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
    try:
        spec = require_mapping(await _body(request), "run")
        reject_unknown(spec, frozenset({"stuck"}), "run")
        if not get_bool(spec, "stuck", "run", True):
            raise SpecError("run.stuck", "a stuck run cannot be unstuck", "cancel it instead")
    except SpecError as exc:
        return _spec_error(exc)
    now = state.clock()
    if not state.runs[run_id].stick(now):
        return error(400, f"Run is {state.runs[run_id].status(now)}: only a live run gets stuck")
    return answer(200, _run_row(state, run_id, now))


def _spec_error(exc: SpecError) -> Response:
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
