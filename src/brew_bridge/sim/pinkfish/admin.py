"""The ``/_sim/`` admin routes: change the Pinkfish simulator's state while it runs.

Health, reset (optionally to a new seed), put a trigger or a key, set the faults, read
or clear the request log, list the runs, and make a run stuck (or not). They pass no
gates and are not logged; a bad body is a 400 ``INVALID_REQUEST`` naming the field.
The handlers every simulator shares (health, reset, faults,
the request log) are :mod:`brew_bridge.sim.brew.admin`'s.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from brew_bridge.sim.brew.admin import health_check, ok, read_body, resetter
from brew_bridge.sim.brew.http import answer
from brew_bridge.sim.brew.specs import SpecError, get_bool, reject_unknown, require_mapping
from brew_bridge.sim.pinkfish.gates import error
from brew_bridge.sim.pinkfish.seed import parse_key, parse_seed, parse_trigger
from brew_bridge.sim.pinkfish.state import PinkfishState, Run, Trigger
from brew_bridge.timefmt import iso_utc

__all__ = [
    "health",
    "list_runs",
    "put_key",
    "put_run",
    "put_trigger",
    "reset",
    "spec_error",
]


health = health_check(ok)
reset = resetter(parse_seed, ok)


async def put_trigger(state: PinkfishState, request: Request) -> Response:
    trigger_id: str = request.path_params["trigger_id"]
    spec = parse_trigger(trigger_id, await read_body(request), "trigger")
    return answer(200, _trigger_row(state.put_trigger(spec)))


async def put_key(state: PinkfishState, request: Request) -> Response:
    api_key: str = request.path_params["api_key"]
    spec = parse_key(api_key, await read_body(request, optional=True), "key")
    state.keys[api_key] = spec
    return answer(200, {"account": spec.account, "revoked": spec.revoked})


async def list_runs(state: PinkfishState, request: Request) -> Response:
    """Every run, oldest first, with its status now."""
    now = state.clock()
    return answer(200, {"data": [_run_row(run, now) for run in state.runs.values()]})


async def put_run(state: PinkfishState, request: Request) -> Response:
    """``{"stuck": true}``: the run stays as it is now (RUNNING stays RUNNING) until
    ``{"stuck": false}``, after which it goes on, later by the time it was stuck."""
    run = state.runs.get(request.path_params["run_id"])
    if run is None:
        return error("RUN_NOT_FOUND")
    spec = require_mapping(await read_body(request), "run")
    reject_unknown(spec, frozenset({"stuck"}), "run")
    stuck = get_bool(spec, "stuck", "run", run.frozen_at is not None)
    now = state.clock()
    if stuck:
        run.stick(now)
    else:
        run.unstick(now)
    return answer(200, _run_row(run, now))


def spec_error(exc: SpecError) -> Response:
    return error("INVALID_REQUEST", str(exc))


def _trigger_row(trigger: Trigger) -> dict[str, Any]:
    spec = trigger.spec
    output = spec.designated_output
    return {
        "triggerId": spec.trigger_id,
        "automationId": spec.automation_id,
        "automationName": spec.automation_name,
        "automationVersion": spec.automation_version,
        "steps": list(spec.steps),
        "durationMs": spec.duration_ms,
        "pendingMs": spec.pending_seconds * 1000.0,
        "outcome": spec.outcome,
        "outcomes": list(spec.outcomes) if spec.outcomes is not None else None,
        "probabilities": dict(spec.probabilities) if spec.probabilities is not None else None,
        "randomSeed": spec.random_seed,
        "stuck": spec.stuck,
        "designatedOutput": None
        if output is None
        else {"fileName": output.file_name, "mimeType": output.mime_type, "size": output.size},
        "account": spec.account,
    }


def _run_row(run: Run, now: float) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "triggerId": run.spec.trigger_id,
        "automationId": run.automation_id,
        "account": run.account,
        "status": run.status(now),
        "stuck": run.frozen_at is not None and run.frozen_at <= now,
        "createdAt": iso_utc(run.plan.created_at),
    }
