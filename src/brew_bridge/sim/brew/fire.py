"""Firing a trigger, and asking whether it is ready to fire.

``fire`` validates the body, honours the idempotency key (header, or the 9.3 body field),
checks the payload against the trigger's schema and starts one run per published
automation. Shape ``9.3`` answers in the legacy fire envelope; ``10`` with its bare
accepted body. The ready check is ``GET …/fire`` in ``9.3`` (:func:`ready`) and
``GET …/readiness`` in ``10`` (:func:`readiness`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

from brew_bridge.sim.brew.envelopes import api_error, fire_envelope
from brew_bridge.sim.brew.http import (
    MAX_KEY,
    RECORD,
    Result,
    invalid,
    is_string,
    key_problem,
    read_json,
    strict,
)
from brew_bridge.sim.brew.idempotency import Conflict, Replay
from brew_bridge.sim.brew.state import KEY, Caller, SimState, Trigger
from brew_bridge.sim.brew.triggers import trigger_not_found
from brew_bridge.timefmt import iso_utc
from brew_bridge.wire.payload_schema import check_payload

__all__ = ["fire", "readiness", "ready"]


async def fire(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    shape = state.api_shape
    trigger_event_id: str = request.path_params["trigger_event_id"]
    if not is_string(trigger_event_id, 1, 256):
        return invalid("triggerEventId", "triggerEventId must be 1 to 256 characters.")
    body, bad = await read_json(request)
    if bad is not None:
        return bad
    bad = strict(body, frozenset({"payload", "idempotencyKey"}))
    if bad is not None:
        return bad
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return invalid("payload", "payload is required and must be a JSON object.")
    key = request.headers.get("idempotency-key")
    if key is not None:
        bad = key_problem(key)
        if bad is not None:
            return bad
    if "idempotencyKey" in body:
        body_key = body["idempotencyKey"]
        if shape == "10":
            return invalid(
                "idempotencyKey",
                "The idempotency key is a request option: send the Idempotency-Key header.",
            )
        if not is_string(body_key, 1, MAX_KEY):
            return invalid("idempotencyKey", f"idempotencyKey must be 1 to {MAX_KEY} characters.")
        if key is None:  # the header wins when both are sent
            key = body_key
            record = request.scope.get(RECORD)
            if record is not None:
                record[KEY] = key
    received_at = iso_utc(now)
    trigger = state.trigger(caller, trigger_event_id)
    if trigger is None:
        return _not_found(trigger_event_id, received_at)
    fingerprint = ""
    if key is not None:
        fingerprint = _fingerprint(trigger_event_id, payload)
        seen = state.idempotency.lookup(caller.brand_id, key, fingerprint, now)
        if seen is not None:
            return _replay_or_conflict(seen, trigger_event_id, received_at, shape)
    check = check_payload(payload, trigger.spec.payload_schema)
    warnings = [w.to_wire() for w in check.warnings]
    if not check.ok:
        return 400, fire_envelope(
            success=False,
            status="payload_mismatch",
            code="INVALID_PAYLOAD",
            message="Payload validation failed.",
            received_at=received_at,
            trigger_event_id=trigger_event_id,
            details={
                "errors": [e.to_wire() for e in check.errors],
                "warnings": warnings,
                "payloadSchema": trigger.spec.payload_schema,
            },
        )
    published = _published(trigger)
    if not published:
        return 422, fire_envelope(
            success=False,
            status="failed",
            code="NO_PUBLISHED_AUTOMATION",
            message=f"Trigger event '{trigger_event_id}' has no published automation attached.",
            received_at=received_at,
            trigger_event_id=trigger_event_id,
        )
    instance_id, runs = state.start_runs(caller, trigger, check.resolved, now)
    details: dict[str, Any] = {"resolvedPayload": check.resolved}
    if warnings:
        details["warnings"] = warnings
    if key is not None:
        details["idempotencyKey"] = key
    details["triggerInstanceId"] = instance_id
    details["publishedAutomations"] = published
    details["automationRunIds"] = [run.run_id for run in runs]
    details["counts"] = {"automations": len(published)}
    if key is not None:
        # A replay answers with the original time as well as the original runs.
        state.idempotency.remember(caller.brand_id, key, fingerprint, (details, received_at), now)
    return 200, _fire_body("triggered", trigger_event_id, received_at, details, shape)


async def ready(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    trigger_event_id: str = request.path_params["trigger_event_id"]
    trigger = state.trigger(caller, trigger_event_id)
    received_at = iso_utc(now)
    if trigger is None:
        return _not_found(trigger_event_id, received_at)
    published = _published(trigger)
    return 200, fire_envelope(
        success=True,
        status="ready",
        code="TRIGGER_EVENT_READY",
        message="Trigger event definition loaded successfully.",
        received_at=received_at,
        trigger_event_id=trigger_event_id,
        details={
            "title": trigger.spec.title,
            "provider": trigger.spec.provider,
            "payloadSchema": trigger.spec.payload_schema,
            "endpoint": {
                "method": "POST",
                "path": f"/v1/automations/triggers/{quote(trigger_event_id, safe='')}/fire",
            },
            "publishedAutomations": published,
            "counts": {"automations": len(published)},
        },
    )


async def readiness(state: SimState, request: Request, caller: Caller, now: float) -> Result:
    trigger_event_id: str = request.path_params["trigger_event_id"]
    trigger = state.trigger(caller, trigger_event_id)
    if trigger is None:
        return trigger_not_found(trigger_event_id)
    published = _published(trigger)
    blockers = (
        []
        if published
        else [
            {
                "code": "NO_PUBLISHED_AUTOMATION",
                "message": "No published automation is wired to this trigger.",
            }
        ]
    )
    return 200, {
        "triggerEventId": trigger_event_id,
        "ready": bool(published),
        "blockers": blockers,
        "publishedAutomations": published,
        "counts": {"automations": len(published), "skipped": 0},
    }


def _not_found(trigger_event_id: str, received_at: str) -> Result:
    """The fire pipeline's own 404 envelope; unlike its other refusals, no ``triggerEventId``."""
    return 404, fire_envelope(
        success=False,
        status="trigger_event_not_found",
        code="TRIGGER_EVENT_NOT_FOUND",
        message=f"Trigger event '{trigger_event_id}' was not found.",
        received_at=received_at,
    )


def _published(trigger: Trigger) -> list[dict[str, Any]]:
    out = []
    for automation in trigger.published:
        item = {"automationId": automation.automation_id, "name": automation.name}
        if automation.primary_from_address is not None:
            item["primaryFromAddress"] = automation.primary_from_address
        out.append(item)
    return out


def _fingerprint(trigger_event_id: str, payload: Mapping[str, Any]) -> str:
    return trigger_event_id + "\n" + json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _replay_or_conflict(
    seen: Replay | Conflict, trigger_event_id: str, received_at: str, shape: str
) -> Result:
    if isinstance(seen, Conflict):
        if shape == "10":
            return api_error("IDEMPOTENCY_CONFLICT")
        return 409, fire_envelope(
            success=False,
            status="failed",
            code="IDEMPOTENCY_CONFLICT",
            message="The same idempotency key was reused with a different request payload.",
            received_at=received_at,
            trigger_event_id=trigger_event_id,
        )
    details, original_received_at = seen.stored
    return 200, _fire_body(
        "idempotent_replay", trigger_event_id, original_received_at, details, shape
    )


def _fire_body(
    status: str, trigger_event_id: str, received_at: str, details: dict[str, Any], shape: str
) -> dict[str, Any]:
    if shape == "10":  # the bare accepted body of SDK 10+
        return {
            "triggerInstanceId": details["triggerInstanceId"],
            "triggerEventId": trigger_event_id,
            "status": status,
            "automationRunIds": details["automationRunIds"],
            "publishedAutomations": details["publishedAutomations"],
            "counts": details["counts"],
            "warnings": details.get("warnings", []),
            "receivedAt": received_at,
        }
    replay = status == "idempotent_replay"
    return fire_envelope(
        success=True,
        status=status,
        code="IDEMPOTENT_REPLAY" if replay else "TRIGGERED",
        message=(
            "Idempotent replay: this key was already used with the same body; "
            "the original runs are returned."
            if replay
            else "Trigger event accepted and matched published attachments."
        ),
        received_at=received_at,
        trigger_event_id=trigger_event_id,
        details=details,
    )
