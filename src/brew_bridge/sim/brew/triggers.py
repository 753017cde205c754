"""The trigger routes: list, detail (shape ``10``) and create, and the trigger's row.

Handlers take the state, the request, the authenticated caller and the request's time,
and return ``(status, body)``; :mod:`brew_bridge.sim.brew.gates` runs them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

from brew_bridge.sim.brew.envelopes import api_error
from brew_bridge.sim.brew.http import (
    Result,
    cursor,
    invalid,
    is_string,
    key_problem,
    page,
    page_limit,
    read_cursor,
    read_json,
    strict,
    strict_query,
)
from brew_bridge.sim.brew.idempotency import Conflict, Replay
from brew_bridge.sim.brew.seed import TriggerSpec
from brew_bridge.sim.brew.state import Caller, SimState, Trigger, new_id
from brew_bridge.wire.payload_schema import EMAIL_RULE, schema_problems

__all__ = [
    "create_trigger",
    "get_trigger",
    "list_triggers",
    "trigger_not_found",
    "trigger_row",
]


def trigger_row(trigger: Trigger) -> dict[str, Any]:
    """A trigger as the API lists it (key order as in the contract)."""
    spec = trigger.spec
    row: dict[str, Any] = {"triggerEventId": spec.trigger_event_id, "title": spec.title}
    if spec.description is not None:
        row["description"] = spec.description
    row["provider"] = spec.provider
    row["payloadSchema"] = spec.payload_schema
    row["createdAt"] = trigger.created_at
    row["updatedAt"] = trigger.updated_at
    return row


def trigger_not_found(trigger_event_id: str) -> Result:
    """The standard 404 for a trigger this caller cannot see."""
    return api_error(
        "TRIGGER_EVENT_NOT_FOUND",
        message=f"Trigger event '{trigger_event_id}' was not found.",
        param="triggerEventId",
    )


def _skill(trigger: Trigger) -> str:
    path = f"/v1/automations/triggers/{quote(trigger.spec.trigger_event_id, safe='')}/fire"
    return f"# Fire {trigger.spec.trigger_event_id}\n\nPOST {path} with {{payload}}.\n"


def _row(trigger: Trigger, skill: bool) -> dict[str, Any]:
    row = trigger_row(trigger)
    if skill:
        row["skill"] = _skill(trigger)
    return row


async def list_triggers(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    query = request.query_params
    bad = strict_query(query, frozenset({"triggerEventId", "include", "limit", "cursor"}))
    if bad is not None:
        return bad
    include = query.get("include")
    if include is not None and include != "skill":
        return invalid("include", 'include must be "skill".')
    trigger_event_id = query.get("triggerEventId")
    if trigger_event_id is not None:  # detail mode of 9.3: the one row in a list
        trigger = state.trigger(caller, trigger_event_id)
        if trigger is None:
            return trigger_not_found(trigger_event_id)
        return 200, {"data": [_row(trigger, include == "skill")]}
    limit = page_limit(query)
    if isinstance(limit, tuple):
        return limit
    start = 0
    if "cursor" in query:
        position = read_cursor("triggers", query["cursor"])
        if position is None:
            return invalid("cursor", "cursor is not one this API returned.")
        start = position
    triggers = state.visible_triggers(caller)
    rows = [trigger_row(t) for t in triggers[start : start + limit]]
    next_cursor = cursor("triggers", start + limit) if start + limit < len(triggers) else None
    return 200, page(rows, limit, next_cursor)


async def get_trigger(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    query = request.query_params
    bad = strict_query(query, frozenset({"include"}))
    if bad is not None:
        return bad
    trigger_event_id: str = request.path_params["trigger_event_id"]
    trigger = state.trigger(caller, trigger_event_id)
    if trigger is None:
        return trigger_not_found(trigger_event_id)
    # Unlike the list, the detail route ignores an ``include`` it does not know.
    return 200, _row(trigger, query.get("include") == "skill")


async def create_trigger(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    body, bad = await read_json(request)
    if bad is not None:
        return bad
    if "provider" in body:
        return invalid("provider", 'provider is set by the server ("brew_api").')
    bad = strict(body, frozenset({"title", "description", "payloadSchema"}))
    if bad is not None:
        return bad
    if not is_string(body.get("title"), 1, 120):
        return invalid("title", "title is required: 1 to 120 characters.")
    if "description" in body and not is_string(body["description"], 0, 2000):
        return invalid("description", "description must be at most 2000 characters.")
    schema = body.get("payloadSchema")
    problems = schema_problems(schema)
    if problems == [EMAIL_RULE]:
        return api_error("PAYLOAD_SCHEMA_EMAIL_REQUIRED", param="payloadSchema")
    if problems:
        return invalid("payloadSchema", "; ".join(problems))
    key = request.headers.get("idempotency-key")
    fingerprint = json.dumps(body, sort_keys=True)
    if key is not None:
        bad = key_problem(key)
        if bad is not None:
            return bad
        # Namespaced so a key reused across fire and create never collides.
        seen = state.idempotency.lookup(caller.brand_id, "triggers:" + key, fingerprint, now)
        if isinstance(seen, Replay):
            return 201, seen.stored
        if isinstance(seen, Conflict):
            return api_error("IDEMPOTENCY_CONFLICT")
    spec = TriggerSpec(
        trigger_event_id=new_id("tri_"),
        title=body["title"],
        payload_schema=schema,
        description=body.get("description"),
        brand_id=caller.brand_id,
    )
    row = trigger_row(state.put_trigger(spec))
    if key is not None:
        state.idempotency.remember(caller.brand_id, "triggers:" + key, fingerprint, row, now)
    return 201, row
