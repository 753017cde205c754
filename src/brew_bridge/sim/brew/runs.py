"""The run routes: list (with 9.3's detail mode), detail with node logs, and cancel.

A run's status and logs are computed from its plan at the request's time
(:func:`brew_bridge.sim.brew.runclock.run_view`) and written in the wire names of the
current API shape: ``9.3`` has no ``partially_completed``, ``10`` calls ``pending``
``queued``.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from brew_bridge.sim.brew.envelopes import api_error
from brew_bridge.sim.brew.http import (
    Result,
    cursor,
    invalid,
    is_string,
    page,
    page_limit,
    read_cursor,
    read_json,
    strict,
    strict_query,
)
from brew_bridge.sim.brew.runclock import NodeLog, run_view
from brew_bridge.sim.brew.state import Caller, Run, RunFilter, SimState
from brew_bridge.timefmt import iso_utc, parse_iso

__all__ = ["cancel_patch", "cancel_post", "get_run", "list_runs"]

_WIRE_STATUS = {
    "9.3": {"partially_completed": "completed"},
    "10": {"pending": "queued"},
}
_STATUS_FILTER = {
    "9.3": {
        "pending": frozenset({"pending"}),
        "running": frozenset({"running"}),
        "completed": frozenset({"completed", "partially_completed"}),
        "failed": frozenset({"failed"}),
        "canceled": frozenset({"canceled"}),
    },
    "10": {
        "queued": frozenset({"pending"}),
        "scheduled": frozenset(),
        "running": frozenset({"running"}),
        "paused": frozenset(),
        "completed": frozenset({"completed"}),
        "partially_completed": frozenset({"partially_completed"}),
        "failed": frozenset({"failed"}),
        "canceled": frozenset({"canceled"}),
    },
}
_LOG_STATUS_10 = {"success": "completed", "error": "failed"}
_RUN_QUERY = frozenset(
    {
        "automationRunId",
        "include",
        "automationId",
        "triggerEventId",
        "triggerInstanceId",
        "recipientEmail",
        "status",
        "mode",
        "from",
        "to",
        "limit",
        "cursor",
    }
)
_FILTER_LENGTHS = {
    "automationId": (1, 64),
    "triggerEventId": (1, 256),
    "triggerInstanceId": (4, 64),
    "recipientEmail": (3, 320),
}
_MAX_LOGS = 100


async def list_runs(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    shape = state.api_shape
    query = request.query_params
    bad = strict_query(query, _RUN_QUERY)
    if bad is not None:
        return bad
    run_id = query.get("automationRunId")
    include = query.get("include")
    if include is not None and include != "logs":
        return invalid("include", 'include must be "logs".')
    if shape == "10" and run_id is not None:
        return invalid(
            "automationRunId", "Read one run with GET /v1/automations/runs/{automationRunId}."
        )
    if run_id is not None:
        if not is_string(run_id, 1, 64):
            return invalid("automationRunId", "automationRunId must be 1 to 64 characters.")
        run = state.run(caller, run_id)
        if run is None:
            return _not_found(run_id)
        return 200, {"data": [_run_row(run, now, shape, logs=include == "logs")]}
    if include is not None:
        return invalid("include", "include=logs needs automationRunId (detail mode).")
    where = _run_filter(query, shape)
    if isinstance(where, tuple):
        return where
    limit = page_limit(query)
    if isinstance(limit, tuple):
        return limit
    before = None
    if "cursor" in query:
        before = read_cursor("runs", query["cursor"])
        if before is None:
            return invalid("cursor", "cursor is not one this API returned.")
    runs, more = state.list_runs(caller, where, limit, before, now)
    next_cursor = cursor("runs", runs[-1].seq) if more else None
    return 200, page([_run_row(run, now, shape) for run in runs], limit, next_cursor)


async def get_run(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    query = request.query_params
    bad = strict_query(query, frozenset({"include"}))
    if bad is not None:
        return bad
    include = query.get("include")
    if include is not None and include != "logs":
        return invalid("include", 'include must be "logs".')
    run_id: str = request.path_params["run_id"]
    run = state.run(caller, run_id)
    if run is None:
        return _not_found(run_id)
    return 200, _run_row(run, now, state.api_shape, logs=include == "logs")


async def cancel_patch(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    """9.3's ``PATCH /runs`` with ``{automationRunId, status: "canceled"}``."""
    body, bad = await read_json(request)
    if bad is not None:
        return bad
    bad = strict(body, frozenset({"automationRunId", "status", "reason"}))
    if bad is not None:
        return bad
    run_id = body.get("automationRunId")
    if not is_string(run_id, 1, 64):
        return invalid("automationRunId", "automationRunId is required.")
    if body.get("status") != "canceled":
        return invalid("status", 'status must be "canceled" (one L).')
    return _cancel(state, caller, run_id, body.get("reason"), now)


async def cancel_post(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    """10's ``POST /runs/{id}/cancel``, whose body is optional."""
    raw = await request.body()
    body: Any = {}
    if raw:
        body, bad = await read_json(request)
        if bad is not None:
            return bad
    bad = strict(body, frozenset({"reason"}))
    if bad is not None:
        return bad
    return _cancel(state, caller, request.path_params["run_id"], body.get("reason"), now)


def _cancel(state: SimState, caller: Caller, run_id: str, reason: object, now: float) -> Result:
    if reason is not None and not is_string(reason, 0, 1000):
        return invalid("reason", "reason must be a string of at most 1000 characters.")
    run = state.run(caller, run_id)
    if run is None:
        return _not_found(run_id)
    done, previous = state.cancel(run, now, reason if isinstance(reason, str) else None)
    wire = _WIRE_STATUS[state.api_shape]
    previous_wire = wire.get(previous, previous)
    if not done:
        return api_error(
            "RUN_NOT_CANCELLABLE",
            message=(
                f"Automation run '{run_id}' is already {previous_wire} "
                "and can no longer be canceled."
            ),
        )
    return 200, {
        "automationRunId": run_id,
        "status": "canceled",
        "previousStatus": previous_wire,
    }


def _not_found(run_id: str) -> Result:
    return api_error(
        "AUTOMATION_RUN_NOT_FOUND",
        message=f"Automation run '{run_id}' was not found.",
        param="automationRunId",
    )


def _run_filter(query: QueryParams, shape: str) -> RunFilter | Result:
    for name, (lo, hi) in _FILTER_LENGTHS.items():
        value = query.get(name)
        if value is not None and not is_string(value, lo, hi):
            return invalid(name, f"{name} must be {lo} to {hi} characters.")
    email = query.get("recipientEmail")
    if email is not None and "@" not in email:
        return invalid("recipientEmail", "recipientEmail must be an email address.")
    statuses = None
    if "status" in query:
        allowed = _STATUS_FILTER[shape]
        statuses = allowed.get(query["status"])
        if statuses is None:
            return invalid("status", f"status must be one of: {', '.join(allowed)}.")
    mode = query.get("mode")
    if mode is not None and mode not in ("live", "test"):
        return invalid("mode", 'mode must be "live" or "test".')
    times: dict[str, float | None] = {}
    for name in ("from", "to"):
        raw = query.get(name)
        # Strict like the rest of the query: parse_iso alone would forgive surrounding spaces.
        times[name] = None if raw is None or raw != raw.strip() else parse_iso(raw)
        if raw is not None and times[name] is None:
            return invalid(name, f"{name} must be an ISO-8601 date-time.")
    return RunFilter(
        automation_id=query.get("automationId"),
        trigger_event_id=query.get("triggerEventId"),
        trigger_instance_id=query.get("triggerInstanceId"),
        recipient_email=email,
        statuses=statuses,
        mode=mode,
        from_=times["from"],
        to=times["to"],
    )


def _run_row(run: Run, now: float, shape: str, *, logs: bool = False) -> dict[str, Any]:
    """An ``AutomationRunRow`` (strict: only the contract's keys)."""
    view = run_view(run.plan, now, run.canceled_at)
    statuses = _WIRE_STATUS[shape]
    row: dict[str, Any] = {
        "automationRunId": run.run_id,
        "automationId": run.automation.automation_id,
        "automationVersionId": run.automation.version_id,
        "triggerInstanceId": run.trigger_instance_id,
        "mode": run.mode,
        "status": statuses.get(view.status, view.status),
    }
    if run.recipient_email is not None:
        row["recipientEmail"] = run.recipient_email
    if view.started_at is not None:
        row["startedAt"] = iso_utc(view.started_at)
    if view.completed_at is not None:
        row["completedAt"] = iso_utc(view.completed_at)
    if view.error is not None:
        row["error"] = view.error
    if logs:
        row["logs"] = [_log_row(run, node, shape) for node in view.logs[-_MAX_LOGS:]]
        if len(view.logs) > _MAX_LOGS:
            row["logsTruncated"] = True
    return row


def _log_row(run: Run, node: NodeLog, shape: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "automationRunId": run.run_id,
        "nodeId": node.node_id,
        "nodeName": node.node_name,
        "nodeType": node.node_type,
        "status": node.status if shape == "9.3" else _LOG_STATUS_10.get(node.status, node.status),
        "orderIndex": node.order_index,
        "startedAt": iso_utc(node.started_at),
    }
    if node.completed_at is not None:
        item["durationMs"] = round((node.completed_at - node.started_at) * 1000)
        item["completedAt"] = iso_utc(node.completed_at)
    if node.error is not None:
        item["error"] = node.error
    return item
