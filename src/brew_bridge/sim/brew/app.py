"""The simulator's HTTP face: Brew v1's automations routes and the ``/_sim/`` admin routes.

:class:`SimApp` is the ASGI application. Around every request it mints the
``x-request-id`` (``req_`` + 32 hex), records API requests in the request log, and turns
an unexpected exception into a standard 500 envelope. Each API route then runs the same
gates in the same order as Brew: injected faults (a gateway fails before Brew sees the
request), authentication and brand scope, the rate window of the route's policy, and
only then the route's own validation and work. Post-work faults (``reset``,
``errorAfterWork``, ``hangAfterWork``) act once the work is done and recorded.

Routes are served in one of two API shapes (brew-api.md §11): ``9.3`` (default) or
``10``; the shape is read per request, so ``POST /_sim/reset`` with a new seed can
switch it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from brew_bridge.sim.brew.envelopes import api_error, code_for_status, fire_envelope, iso
from brew_bridge.sim.brew.faults import FaultAction, parse_faults
from brew_bridge.sim.brew.idempotency import Conflict, Replay
from brew_bridge.sim.brew.runclock import run_view
from brew_bridge.sim.brew.seed import (
    TriggerSpec,
    parse_key,
    parse_limits,
    parse_seed,
    parse_trigger,
)
from brew_bridge.sim.brew.specs import SpecError
from brew_bridge.sim.brew.state import (
    AT,
    BODY,
    FAULT,
    KEY,
    METHOD,
    PATH,
    QUERY,
    REQUEST_ID,
    STATUS,
    AuthRefusal,
    Caller,
    Run,
    RunFilter,
    SimState,
    Trigger,
    new_id,
)
from brew_bridge.targets.brew.payload_schema import EMAIL_RULE, check_payload, schema_problems

__all__ = ["SimApp", "create_app"]

log = logging.getLogger("brew_bridge.sim")

_RECORD = "brew_sim.record"
_ABORT = "brew_sim.abort"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_MAX_KEY = 100
_JSON = "application/json"

Result = tuple[int, Any]  # (HTTP status, JSON body)
Handler = Callable[[Request, Caller, float], Awaitable[Result]]


class _NoAnswer(Exception):
    """The connection is gone (reset by a fault, or the client left a hang): send nothing."""


# -- small helpers ---------------------------------------------------------------------


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(body, status, dict(headers) if headers else None)


def _invalid(param: str, message: str | None = None) -> Result:
    return api_error("INVALID_REQUEST", param=param, message=message)


async def _read_json(request: Request) -> tuple[Any, Result | None]:
    """The parsed body, or the 400 a malformed one gets (refused before any pipeline)."""
    raw = await request.body()
    if not raw:
        return None, _invalid("body", "The request body must be a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, _invalid("body", "The request body is not valid JSON.")
    record = request.scope.get(_RECORD)
    if record is not None:
        record[BODY] = body
    if not isinstance(body, dict):
        return body, _invalid("body", "The request body must be a JSON object.")
    return body, None


def _strict(body: Mapping[str, Any], allowed: frozenset[str]) -> Result | None:
    """Brew's bodies are strict: an unknown key (``brandId``, ``metadata``…) is a 400."""
    for key in body:
        if key not in allowed:
            return _invalid(key, f'Unknown field "{key}" in the request body.')
    return None


def _strict_query(query: QueryParams, allowed: frozenset[str]) -> Result | None:
    for key in query:
        if key not in allowed:
            return _invalid(key, f'Unknown query parameter "{key}".')
    return None


def _string(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, str) and lo <= len(value) <= hi


def _parse_time(value: str) -> float | None:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _read_cursor(kind: str, value: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != kind or not number.isdigit():
        return None
    return int(number)


def _limit(query: QueryParams) -> int | Result:
    raw = query.get("limit")
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        return _invalid("limit", "limit must be an integer from 1 to 100.")
    return int(raw)


def _credentials(headers: Mapping[str, str]) -> tuple[str | None, bool]:
    """The API key sent (``Authorization: Bearer`` first, else ``X-API-Key``) and whether
    the Authorization header was malformed (another scheme: an invalid key, not a missing one).
    """
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None, True
        return token.strip() or None, False
    return headers.get("x-api-key"), False


async def _wait_disconnect(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client to hang up; True if it did."""

    async def until_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_gone(), seconds)
    except TimeoutError:
        return False
    return True


def _abort_connection(send: Send) -> None:
    """Drop the connection under this request with a TCP reset and no answer.

    uvicorn's ``send`` is a bound method of its request cycle, which holds the asyncio
    transport; ``SO_LINGER`` 0 turns the close into an RST, so the client sees a reset
    (not a clean EOF) just as when a load balancer drops a connection mid-request.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the ASGI server does not expose its transport; cannot inject a reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# -- wire shapes -------------------------------------------------------------------------

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
_MAX_LOGS = 100


def _published(trigger: Trigger) -> list[dict[str, Any]]:
    out = []
    for automation in trigger.published:
        item = {"automationId": automation.automation_id, "name": automation.name}
        if automation.primary_from_address is not None:
            item["primaryFromAddress"] = automation.primary_from_address
        out.append(item)
    return out


def _trigger_row(trigger: Trigger) -> dict[str, Any]:
    spec = trigger.spec
    row: dict[str, Any] = {"triggerEventId": spec.trigger_event_id, "title": spec.title}
    if spec.description is not None:
        row["description"] = spec.description
    row["provider"] = spec.provider
    row["payloadSchema"] = spec.payload_schema
    row["createdAt"] = trigger.created_at
    row["updatedAt"] = trigger.updated_at
    return row


def _skill(trigger: Trigger) -> str:
    path = f"/v1/automations/triggers/{quote(trigger.spec.trigger_event_id, safe='')}/fire"
    return f"# Fire {trigger.spec.trigger_event_id}\n\nPOST {path} with {{payload}}.\n"


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
        row["startedAt"] = iso(view.started_at)
    if view.completed_at is not None:
        row["completedAt"] = iso(view.completed_at)
    if view.error is not None:
        row["error"] = view.error
    if logs:
        rows = []
        for node in view.logs[-_MAX_LOGS:]:
            item: dict[str, Any] = {
                "automationRunId": run.run_id,
                "nodeId": node.node_id,
                "nodeName": node.node_name,
                "nodeType": node.node_type,
                "status": node.status
                if shape == "9.3"
                else _LOG_STATUS_10.get(node.status, node.status),
                "orderIndex": node.order_index,
                "startedAt": iso(node.started_at),
            }
            if node.completed_at is not None:
                item["durationMs"] = round((node.completed_at - node.started_at) * 1000)
                item["completedAt"] = iso(node.completed_at)
            if node.error is not None:
                item["error"] = node.error
            rows.append(item)
        row["logs"] = rows
        if len(view.logs) > _MAX_LOGS:
            row["logsTruncated"] = True
    return row


def _fingerprint(trigger_event_id: str, payload: Mapping[str, Any]) -> str:
    return trigger_event_id + "\n" + json.dumps(payload, sort_keys=True, separators=(",", ":"))


class SimApp:
    """The ASGI application over one :class:`SimState`."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._routers = {"9.3": self._router("9.3"), "10": self._router("10")}
        self._admin = Router(self._admin_routes(), redirect_slashes=False, default=self._not_found)

    # -- ASGI entry ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        state = self.state
        request_id = new_id("req_", 16)  # req_ + 32 lowercase hex
        rid = request_id.encode()
        path: str = scope["path"]
        record: list[Any] | None = None
        is_api = path.startswith("/api/") or path == "/api"
        if is_api:
            key = None
            for name, value in scope["headers"]:
                if name == b"idempotency-key":
                    key = value.decode("latin-1")
                    break
            record = state.requests.start(
                state.clock(), scope["method"], path, scope["query_string"], key, request_id
            )
            scope[_RECORD] = record
        scope[_ABORT] = send
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
                if record is not None and record[STATUS] is None:
                    record[STATUS] = message["status"]
            await send(message)

        router = self._routers[state.api_shape] if is_api else self._admin
        try:
            await router(scope, receive, send_with_id)
        except _NoAnswer:
            return
        except Exception:
            log.exception("simulator error on %s %s", scope["method"], path)
            if started:
                raise
            status, body = api_error("INTERNAL_ERROR")
            await _json(status, body)(scope, receive, send_with_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body = api_error("NOT_FOUND", message=f"No route for {scope['path']}.")
        await _json(status, body)(scope, receive, send)

    # -- routing -------------------------------------------------------------------------

    def _route(
        self, path: str, handlers: Mapping[str, Callable[[Request], Awaitable[Response]]]
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            handler = handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(handlers)
                status, body = api_error(
                    "METHOD_NOT_ALLOWED",
                    message=f"{request.method} is not allowed here; use {allowed}.",
                )
                return _json(status, body, {"allow": allowed})
            return await handler(request)

        return Route(path, endpoint, methods=_METHODS)

    def _router(self, shape: str) -> Router:
        fire_path = "/api/v1/automations/triggers/{trigger_event_id:path}/fire"
        api = self._api
        routes = [
            self._route(
                fire_path,
                {"POST": api("fire", "automation.runs.write", self.fire)}
                | ({"GET": api("read", "triggers.read", self.ready)} if shape == "9.3" else {}),
            ),
            self._route(
                "/api/v1/automations/triggers",
                {
                    "GET": api("read", "triggers.read", self.list_triggers),
                    "POST": api("read", "triggers.write", self.create_trigger),
                },
            ),
            self._route(
                "/api/v1/automations/runs",
                {"GET": api("read", "automation.runs.read", self.list_runs)}
                | (
                    {"PATCH": api("read", "automation.runs.read", self.cancel_patch)}
                    if shape == "9.3"
                    else {}
                ),
            ),
        ]
        if shape == "10":
            routes += [
                self._route(
                    "/api/v1/automations/triggers/{trigger_event_id:path}/readiness",
                    {"GET": api("read", "triggers.read", self.readiness)},
                ),
                self._route(
                    "/api/v1/automations/triggers/{trigger_event_id:path}",
                    {"GET": api("read", "triggers.read", self.get_trigger)},
                ),
                self._route(
                    "/api/v1/automations/runs/{run_id}/cancel",
                    {"POST": api("read", "automation.runs.read", self.cancel_post)},
                ),
                self._route(
                    "/api/v1/automations/runs/{run_id}",
                    {"GET": api("read", "automation.runs.read", self.get_run)},
                ),
            ]
        return Router(routes, redirect_slashes=False, default=self._not_found)

    # -- the gates every API route passes ------------------------------------------------

    def _api(
        self, fault_scope: str, policy: str, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        state = self.state
        is_fire = fault_scope == "fire"

        async def endpoint(request: Request) -> Response:
            action = state.faults.decide(fault_scope)
            if action.kind != "none":
                early = await self._before_work(request, action, policy)
                if early is not None:
                    return early
            now = state.clock()
            headers = request.headers
            caller = state.authenticate(*_credentials(headers), headers.get("x-brand-id"))
            if isinstance(caller, AuthRefusal):
                response = self._refuse(caller, is_fire, request, now)
            else:
                decision = state.limiter.check(caller.api_key, policy, now)
                if not decision.allowed:
                    status, body = api_error("RATE_LIMITED", retry_after=decision.retry_after)
                    response = _json(status, body, decision.headers())
                else:
                    status, body = await handler(request, caller, now)
                    rate_headers = decision.headers() if 200 <= status <= 202 else None
                    response = _json(status, body, rate_headers)
            if action.kind in ("reset", "errorAfterWork", "hangAfterWork"):
                return await self._after_work(request, action, response)
            return response

        return endpoint

    def _refuse(
        self, refusal: AuthRefusal, is_fire: bool, request: Request, now: float
    ) -> Response:
        if is_fire and refusal.code == "BRAND_SCOPE_MISMATCH":
            # The fire pipeline answers a brand mismatch in its own envelope (brew-api.md §2.2).
            body = fire_envelope(
                success=False,
                status="forbidden",
                code="BRAND_SCOPE_MISMATCH",
                message="This API key is scoped to a different brand than the one requested.",
                received_at=iso(now),
                trigger_event_id=request.path_params.get("trigger_event_id"),
            )
            return _json(403, body)
        status, body = api_error(refusal.code, param=refusal.param)
        return _json(status, body)

    async def _before_work(
        self, request: Request, action: FaultAction, policy: str
    ) -> Response | None:
        """Latency, and the faults that stop a request before Brew does anything."""
        if action.latency_ms:
            await asyncio.sleep(action.latency_ms / 1000.0)
        record = request.scope.get(_RECORD)
        kind = action.kind
        if kind in ("none", "latency", "reset", "errorAfterWork", "hangAfterWork"):
            return None
        if record is not None:
            record[FAULT] = kind
        if kind == "error":
            return self._injected_error(action)
        if kind == "rateLimit":
            retry_after = action.retry_after or 1
            now = self.state.clock()
            status, body = api_error("RATE_LIMITED", retry_after=retry_after)
            return _json(
                status,
                body,
                {
                    "retry-after": str(retry_after),
                    "x-ratelimit-limit": str(self.state.limiter.policies[policy].limit),
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(int(now + retry_after + 0.999)),
                },
            )
        # hang: hold the request; a client that gives up leaves nothing done
        await request.body()
        if await _wait_disconnect(request.receive, action.seconds):
            if record is not None:
                record[STATUS] = 0
            raise _NoAnswer
        return None

    async def _after_work(
        self, request: Request, action: FaultAction, response: Response
    ) -> Response:
        """The faults that strike once the work is done and recorded."""
        record = request.scope.get(_RECORD)
        if record is not None:
            record[FAULT] = action.kind
            record[STATUS] = response.status_code
        if action.kind == "errorAfterWork":
            error = self._injected_error(action)
            if record is not None:
                record[STATUS] = error.status_code
            return error
        if action.kind == "hangAfterWork":
            await request.body()
            if await _wait_disconnect(request.receive, action.seconds):
                raise _NoAnswer
            return response
        _abort_connection(request.scope[_ABORT])
        await _wait_disconnect(request.receive, 5.0)
        raise _NoAnswer

    @staticmethod
    def _injected_error(action: FaultAction) -> Response:
        headers = {"retry-after": str(action.retry_after)} if action.retry_after is not None else {}
        if action.body == "html":
            text = f"<html><body><h1>{action.status} Service Error</h1></body></html>"
            return Response(text, action.status, headers, media_type="text/html")
        if action.body == "empty":
            return Response(b"", action.status, headers)
        _, body = api_error(code_for_status(action.status))
        return _json(action.status, body, headers)

    # -- fire ----------------------------------------------------------------------------

    async def fire(self, request: Request, caller: Caller, now: float) -> Result:
        state = self.state
        shape = state.api_shape
        trigger_event_id: str = request.path_params["trigger_event_id"]
        if not _string(trigger_event_id, 1, 256):
            return _invalid("triggerEventId", "triggerEventId must be 1 to 256 characters.")
        body, bad = await _read_json(request)
        if bad is not None:
            return bad
        bad = _strict(body, frozenset({"payload", "idempotencyKey"}))
        if bad is not None:
            return bad
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return _invalid("payload", "payload is required and must be a JSON object.")
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= _MAX_KEY:
            return _invalid(
                "idempotencyKey", f"Idempotency-Key must be 1 to {_MAX_KEY} characters."
            )
        if "idempotencyKey" in body:
            body_key = body["idempotencyKey"]
            if shape == "10":
                return _invalid(
                    "idempotencyKey",
                    "The idempotency key is a request option: send the Idempotency-Key header.",
                )
            if not _string(body_key, 1, _MAX_KEY):
                return _invalid(
                    "idempotencyKey", f"idempotencyKey must be 1 to {_MAX_KEY} characters."
                )
            if key is None:  # the header wins when both are sent
                key = body_key
                record = request.scope.get(_RECORD)
                if record is not None:
                    record[KEY] = key
        received_at = iso(now)
        trigger = state.trigger(caller, trigger_event_id)
        if trigger is None:
            return 404, fire_envelope(
                success=False,
                status="trigger_event_not_found",
                code="TRIGGER_EVENT_NOT_FOUND",
                message=f"Trigger event '{trigger_event_id}' was not found.",
                received_at=received_at,
            )
        fingerprint = ""
        if key is not None:
            fingerprint = _fingerprint(trigger_event_id, payload)
            seen = state.idempotency.lookup(caller.brand_id, key, fingerprint, now)
            if seen is not None:
                return self._replay_or_conflict(seen, trigger_event_id, received_at, shape)
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
            state.idempotency.remember(
                caller.brand_id, key, fingerprint, (details, received_at), now
            )
        return 200, self._fire_body("triggered", trigger_event_id, received_at, details, shape)

    def _replay_or_conflict(
        self, seen: Replay | Conflict, trigger_event_id: str, received_at: str, shape: str
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
        return 200, self._fire_body(
            "idempotent_replay", trigger_event_id, original_received_at, details, shape
        )

    @staticmethod
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

    async def ready(self, request: Request, caller: Caller, now: float) -> Result:
        trigger_event_id: str = request.path_params["trigger_event_id"]
        trigger = self.state.trigger(caller, trigger_event_id)
        received_at = iso(now)
        if trigger is None:
            return 404, fire_envelope(
                success=False,
                status="trigger_event_not_found",
                code="TRIGGER_EVENT_NOT_FOUND",
                message=f"Trigger event '{trigger_event_id}' was not found.",
                received_at=received_at,
            )
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

    async def readiness(self, request: Request, caller: Caller, now: float) -> Result:
        trigger_event_id: str = request.path_params["trigger_event_id"]
        trigger = self.state.trigger(caller, trigger_event_id)
        if trigger is None:
            return self._trigger_not_found(trigger_event_id)
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

    # -- triggers ------------------------------------------------------------------------

    @staticmethod
    def _trigger_not_found(trigger_event_id: str) -> Result:
        return api_error(
            "TRIGGER_EVENT_NOT_FOUND",
            message=f"Trigger event '{trigger_event_id}' was not found.",
            param="triggerEventId",
        )

    async def list_triggers(self, request: Request, caller: Caller, now: float) -> Result:
        query = request.query_params
        bad = _strict_query(query, frozenset({"triggerEventId", "include", "limit", "cursor"}))
        if bad is not None:
            return bad
        include = query.get("include")
        if include is not None and include != "skill":
            return _invalid("include", 'include must be "skill".')
        trigger_event_id = query.get("triggerEventId")
        if trigger_event_id is not None:
            trigger = self.state.trigger(caller, trigger_event_id)
            if trigger is None:
                return self._trigger_not_found(trigger_event_id)
            row = _trigger_row(trigger)
            if include == "skill":
                row["skill"] = _skill(trigger)
            return 200, {"data": [row]}
        limit = _limit(query)
        if isinstance(limit, tuple):
            return limit
        start = 0
        if "cursor" in query:
            position = _read_cursor("triggers", query["cursor"])
            if position is None:
                return _invalid("cursor", "cursor is not one this API returned.")
            start = position
        triggers = self.state.visible_triggers(caller)
        page = triggers[start : start + limit]
        more = start + limit < len(triggers)
        return 200, {
            "data": [_trigger_row(t) for t in page],
            "pagination": {
                "limit": limit,
                "cursor": _cursor("triggers", start + limit) if more else None,
                "hasMore": more,
            },
        }

    async def get_trigger(self, request: Request, caller: Caller, now: float) -> Result:
        trigger_event_id: str = request.path_params["trigger_event_id"]
        query = request.query_params
        bad = _strict_query(query, frozenset({"include"}))
        if bad is not None:
            return bad
        trigger = self.state.trigger(caller, trigger_event_id)
        if trigger is None:
            return self._trigger_not_found(trigger_event_id)
        row = _trigger_row(trigger)
        if query.get("include") == "skill":
            row["skill"] = _skill(trigger)
        return 200, row

    async def create_trigger(self, request: Request, caller: Caller, now: float) -> Result:
        state = self.state
        body, bad = await _read_json(request)
        if bad is not None:
            return bad
        if "provider" in body:
            return _invalid("provider", 'provider is set by the server ("brew_api").')
        bad = _strict(body, frozenset({"title", "description", "payloadSchema"}))
        if bad is not None:
            return bad
        if not _string(body.get("title"), 1, 120):
            return _invalid("title", "title is required: 1 to 120 characters.")
        if "description" in body and not _string(body["description"], 0, 2000):
            return _invalid("description", "description must be at most 2000 characters.")
        schema = body.get("payloadSchema")
        problems = schema_problems(schema)
        if problems == [EMAIL_RULE]:
            return api_error("PAYLOAD_SCHEMA_EMAIL_REQUIRED", param="payloadSchema")
        if problems:
            return _invalid("payloadSchema", "; ".join(problems))
        key = request.headers.get("idempotency-key")
        fingerprint = json.dumps(body, sort_keys=True)
        if key is not None:
            if not 1 <= len(key) <= _MAX_KEY:
                return _invalid(
                    "idempotencyKey", f"Idempotency-Key must be 1 to {_MAX_KEY} characters."
                )
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
        row = _trigger_row(state.put_trigger(spec))
        if key is not None:
            state.idempotency.remember(caller.brand_id, "triggers:" + key, fingerprint, row, now)
        return 201, row

    # -- runs ----------------------------------------------------------------------------

    def _run_not_found(self, run_id: str) -> Result:
        return api_error(
            "AUTOMATION_RUN_NOT_FOUND",
            message=f"Automation run '{run_id}' was not found.",
            param="automationRunId",
        )

    async def list_runs(self, request: Request, caller: Caller, now: float) -> Result:
        state = self.state
        shape = state.api_shape
        query = request.query_params
        bad = _strict_query(query, _RUN_QUERY)
        if bad is not None:
            return bad
        run_id = query.get("automationRunId")
        include = query.get("include")
        if include is not None and include != "logs":
            return _invalid("include", 'include must be "logs".')
        if shape == "10" and run_id is not None:
            return _invalid(
                "automationRunId", "Read one run with GET /v1/automations/runs/{automationRunId}."
            )
        if run_id is not None:
            if not _string(run_id, 1, 64):
                return _invalid("automationRunId", "automationRunId must be 1 to 64 characters.")
            run = state.run(caller, run_id)
            if run is None:
                return self._run_not_found(run_id)
            return 200, {"data": [_run_row(run, now, shape, logs=include == "logs")]}
        if include is not None:
            return _invalid("include", "include=logs needs automationRunId (detail mode).")
        where = self._run_filter(query, shape)
        if isinstance(where, tuple):
            return where
        limit = _limit(query)
        if isinstance(limit, tuple):
            return limit
        before = None
        if "cursor" in query:
            before = _read_cursor("runs", query["cursor"])
            if before is None:
                return _invalid("cursor", "cursor is not one this API returned.")
        runs, more = state.list_runs(caller, where, limit, before, now)
        return 200, {
            "data": [_run_row(run, now, shape) for run in runs],
            "pagination": {
                "limit": limit,
                "cursor": _cursor("runs", runs[-1].seq) if more else None,
                "hasMore": more,
            },
        }

    @staticmethod
    def _run_filter(query: QueryParams, shape: str) -> RunFilter | Result:
        limits = {
            "automationId": (1, 64),
            "triggerEventId": (1, 256),
            "triggerInstanceId": (4, 64),
            "recipientEmail": (3, 320),
        }
        for name, (lo, hi) in limits.items():
            value = query.get(name)
            if value is not None and not _string(value, lo, hi):
                return _invalid(name, f"{name} must be {lo} to {hi} characters.")
        email = query.get("recipientEmail")
        if email is not None and "@" not in email:
            return _invalid("recipientEmail", "recipientEmail must be an email address.")
        statuses = None
        if "status" in query:
            allowed = _STATUS_FILTER[shape]
            statuses = allowed.get(query["status"])
            if statuses is None:
                return _invalid("status", f"status must be one of: {', '.join(allowed)}.")
        mode = query.get("mode")
        if mode is not None and mode not in ("live", "test"):
            return _invalid("mode", 'mode must be "live" or "test".')
        times: dict[str, float | None] = {}
        for name in ("from", "to"):
            raw = query.get(name)
            times[name] = None if raw is None else _parse_time(raw)
            if raw is not None and times[name] is None:
                return _invalid(name, f"{name} must be an ISO-8601 date-time.")
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

    async def get_run(self, request: Request, caller: Caller, now: float) -> Result:
        query = request.query_params
        bad = _strict_query(query, frozenset({"include"}))
        if bad is not None:
            return bad
        include = query.get("include")
        if include is not None and include != "logs":
            return _invalid("include", 'include must be "logs".')
        run_id: str = request.path_params["run_id"]
        run = self.state.run(caller, run_id)
        if run is None:
            return self._run_not_found(run_id)
        return 200, _run_row(run, now, self.state.api_shape, logs=include == "logs")

    async def cancel_patch(self, request: Request, caller: Caller, now: float) -> Result:
        body, bad = await _read_json(request)
        if bad is not None:
            return bad
        bad = _strict(body, frozenset({"automationRunId", "status", "reason"}))
        if bad is not None:
            return bad
        run_id = body.get("automationRunId")
        if not _string(run_id, 1, 64):
            return _invalid("automationRunId", "automationRunId is required.")
        if body.get("status") != "canceled":
            return _invalid("status", 'status must be "canceled" (one L).')
        return self._cancel(caller, run_id, body.get("reason"), now)

    async def cancel_post(self, request: Request, caller: Caller, now: float) -> Result:
        raw = await request.body()
        body: Any = {}
        if raw:
            body, bad = await _read_json(request)
            if bad is not None:
                return bad
        bad = _strict(body, frozenset({"reason"}))
        if bad is not None:
            return bad
        return self._cancel(caller, request.path_params["run_id"], body.get("reason"), now)

    def _cancel(self, caller: Caller, run_id: str, reason: object, now: float) -> Result:
        if reason is not None and not _string(reason, 0, 1000):
            return _invalid("reason", "reason must be a string of at most 1000 characters.")
        state = self.state
        run = state.run(caller, run_id)
        if run is None:
            return self._run_not_found(run_id)
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

    # -- admin ---------------------------------------------------------------------------

    def _admin_routes(self) -> list[Route]:
        return [
            self._route("/_sim/health", {"GET": self.admin_health}),
            self._route("/_sim/reset", {"POST": self.admin_reset}),
            self._route("/_sim/triggers/{trigger_event_id:path}", {"PUT": self.admin_trigger}),
            self._route("/_sim/keys/{api_key:path}", {"PUT": self.admin_key}),
            self._route("/_sim/limits", {"GET": self.admin_get_limits, "PUT": self.admin_limits}),
            self._route("/_sim/faults", {"PUT": self.admin_faults}),
            self._route(
                "/_sim/requests", {"GET": self.admin_requests, "DELETE": self.admin_clear_requests}
            ),
        ]

    @staticmethod
    async def _admin_body(request: Request, *, optional: bool = False) -> Any:
        raw = await request.body()
        if not raw and optional:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError("body", "not valid JSON", "send a JSON object") from exc

    @staticmethod
    def _spec_error(exc: SpecError) -> Response:
        status, body = api_error("INVALID_REQUEST", param=exc.path, message=str(exc))
        return _json(status, body)

    async def admin_health(self, request: Request) -> Response:
        return _json(200, {"ok": True, "apiShape": self.state.api_shape})

    async def admin_reset(self, request: Request) -> Response:
        try:
            raw = await self._admin_body(request, optional=True)
            seed = parse_seed(raw) if raw is not None else None
        except SpecError as exc:
            return self._spec_error(exc)
        self.state.reset(seed)
        return _json(200, {"ok": True, "apiShape": self.state.api_shape})

    async def admin_trigger(self, request: Request) -> Response:
        trigger_event_id: str = request.path_params["trigger_event_id"]
        try:
            spec = parse_trigger(trigger_event_id, await self._admin_body(request), "trigger")
        except SpecError as exc:
            return self._spec_error(exc)
        row = _trigger_row(self.state.put_trigger(spec))
        row["automations"] = [
            {"automationId": a.automation_id, "published": a.published, "outcome": a.outcome}
            for a in spec.automations
        ]
        return _json(200, row)

    async def admin_key(self, request: Request) -> Response:
        api_key: str = request.path_params["api_key"]
        try:
            spec = parse_key(api_key, await self._admin_body(request, optional=True), "key")
        except SpecError as exc:
            return self._spec_error(exc)
        self.state.keys[api_key] = spec
        brands = list(spec.brands) if spec.brands is not None else None
        return _json(200, {"brandId": spec.brand_id, "brands": brands, "revoked": spec.revoked})

    def _limits_body(self) -> dict[str, Any]:
        return {
            name: {"limit": p.limit, "windowSeconds": p.window_seconds}
            for name, p in self.state.limiter.policies.items()
        }

    async def admin_get_limits(self, request: Request) -> Response:
        return _json(200, self._limits_body())

    async def admin_limits(self, request: Request) -> Response:
        try:
            policies = parse_limits(await self._admin_body(request), "limits")
        except SpecError as exc:
            return self._spec_error(exc)
        self.state.limiter.configure(policies)
        return _json(200, self._limits_body())

    async def admin_faults(self, request: Request) -> Response:
        try:
            faults = parse_faults(await self._admin_body(request, optional=True) or {})
        except SpecError as exc:
            return self._spec_error(exc)
        self.state.faults = faults
        return _json(200, {"ok": True})

    async def admin_requests(self, request: Request) -> Response:
        data = [
            {
                "at": entry[AT],
                "method": entry[METHOD],
                "path": entry[PATH],
                "query": dict(parse_qsl(entry[QUERY].decode("latin-1"), keep_blank_values=True)),
                "idempotencyKey": entry[KEY],
                "body": entry[BODY],
                "status": entry[STATUS],
                "fault": entry[FAULT],
                "requestId": entry[REQUEST_ID],
            }
            for entry in self.state.requests
        ]
        return _json(200, {"data": data})

    async def admin_clear_requests(self, request: Request) -> Response:
        self.state.requests.clear()
        return _json(200, {"ok": True})


def create_app(state: SimState) -> SimApp:
    """The ASGI app serving ``state``."""
    return SimApp(state)
