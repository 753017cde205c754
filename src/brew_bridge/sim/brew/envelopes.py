"""The bodies Brew answers with when something is refused, built in one place.

Two shapes exist (brew-api.md §1.5, §8): the standard ``ApiErrorEnvelope``
``{error: {code, type, message, suggestion, docs, param?, retryAfter?, details?}}`` used by
every endpoint, and the legacy *fire envelope* ``{success, status, code, message,
triggerEventId?, receivedAt, details?}`` that ``…/fire`` uses for its successes and its
own refusals. The official SDK only treats a body as an envelope when ``code``, ``type``,
``message``, ``suggestion`` and ``docs`` are all strings, so every standard error here
carries all five. Texts are the 9.3.0 spec's where it gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DOCS_ROOT",
    "ErrorKind",
    "api_error",
    "code_for_status",
    "error_kind",
    "fire_envelope",
]

DOCS_ROOT = "https://docs.brew.new/api-reference"


@dataclass(frozen=True)
class ErrorKind:
    """Everything fixed about one error code: HTTP status, type and default texts."""

    status: int
    type: str
    message: str
    suggestion: str
    docs: str


def _kind(status: int, type_: str, message: str, suggestion: str, page: str) -> ErrorKind:
    return ErrorKind(status, type_, message, suggestion, f"{DOCS_ROOT}/api/{page}")


_KINDS: dict[str, ErrorKind] = {
    "INVALID_REQUEST": _kind(
        400,
        "invalid_request",
        "Request validation failed.",
        "Fix the field reported in `param` and retry.",
        "errors",
    ),
    "BRAND_ID_REQUIRED": _kind(
        400,
        "invalid_request",
        "This API key is scoped to an organization; the request must name a brand.",
        "Send the X-Brand-Id header with one of the organization's brand ids.",
        "authentication",
    ),
    "PAYLOAD_SCHEMA_EMAIL_REQUIRED": _kind(
        400,
        "invalid_request",
        'payloadSchema.fields must declare { key: "email", type: "string", required: true }.',
        "Add the required email field to payloadSchema.fields.",
        "errors",
    ),
    "AUTHENTICATION_REQUIRED": _kind(
        401,
        "authentication_error",
        "No API key was provided.",
        "Send the key as `Authorization: Bearer brew_...` or `X-API-Key: brew_...`.",
        "authentication",
    ),
    "INVALID_API_KEY": _kind(
        401,
        "authentication_error",
        "The provided API key is invalid.",
        "Check the API key format and retry with a valid active key.",
        "authentication",
    ),
    "API_KEY_REVOKED": _kind(
        401,
        "authentication_error",
        "The provided API key has been revoked.",
        "Create a new API key in the Brew dashboard and use it instead.",
        "authentication",
    ),
    "INSUFFICIENT_PERMISSIONS": _kind(
        403,
        "authorization_error",
        "The caller does not have the required permission.",
        "Use an API key or session with the required permission.",
        "authentication",
    ),
    "BRAND_SCOPE_MISMATCH": _kind(
        403,
        "authorization_error",
        "This API key is scoped to a different brand than the one requested.",
        "Drop the X-Brand-Id header or send the brand the key belongs to.",
        "authentication",
    ),
    "NOT_FOUND": _kind(
        404,
        "not_found",
        "The requested resource does not exist.",
        "Check the method and path against the API reference.",
        "errors",
    ),
    "BRAND_NOT_FOUND": _kind(
        404,
        "not_found",
        "The requested brand was not found in this organization.",
        "Send an X-Brand-Id that belongs to the key's organization.",
        "authentication",
    ),
    "TRIGGER_EVENT_NOT_FOUND": _kind(
        404,
        "not_found",
        "Trigger event was not found.",
        "List triggers with GET /v1/automations/triggers.",
        "errors",
    ),
    "AUTOMATION_RUN_NOT_FOUND": _kind(
        404,
        "not_found",
        "Automation run was not found.",
        "List runs with GET /v1/automations/runs.",
        "errors",
    ),
    "METHOD_NOT_ALLOWED": _kind(
        405,
        "invalid_request",
        "This method is not allowed on this path.",
        "Check the method against the API reference.",
        "errors",
    ),
    "RUN_NOT_CANCELLABLE": _kind(
        409,
        "conflict",
        "The automation run can no longer be canceled.",
        "The run has already finished and can no longer be canceled.",
        "errors",
    ),
    "IDEMPOTENCY_CONFLICT": _kind(
        409,
        "conflict",
        "The same idempotency key was reused with a different request payload.",
        "Reuse the original payload or send a new idempotency key.",
        "idempotency",
    ),
    "RATE_LIMITED": _kind(
        429,
        "rate_limit",
        "Too many requests.",
        "Wait for the retry window before sending another request.",
        "rate-limits",
    ),
    "INTERNAL_ERROR": _kind(
        500,
        "internal_error",
        "An unexpected error occurred.",
        "Retry the request. If it keeps failing, contact support.",
        "errors",
    ),
    "BAD_GATEWAY": _kind(
        502,
        "internal_error",
        "An upstream service returned an invalid response.",
        "Retry the request. If it keeps failing, contact support.",
        "errors",
    ),
    "SERVICE_UNAVAILABLE": _kind(
        503,
        "service_unavailable",
        "The service is temporarily unavailable.",
        "Retry in a few seconds.",
        "errors",
    ),
    "GATEWAY_TIMEOUT": _kind(
        504,
        "internal_error",
        "An upstream service did not answer in time.",
        "Retry the request. If it keeps failing, contact support.",
        "errors",
    ),
}

_CODE_FOR_STATUS = {
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def error_kind(code: str) -> ErrorKind:
    """The fixed facts of ``code``; ``KeyError`` for a code the simulator never emits."""
    return _KINDS[code]


def api_error(
    code: str,
    *,
    message: str | None = None,
    param: str | None = None,
    retry_after: int | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """``(http_status, body)`` of a standard error envelope."""
    kind = _KINDS[code]
    error: dict[str, Any] = {
        "code": code,
        "type": kind.type,
        "message": message if message is not None else kind.message,
        "suggestion": kind.suggestion,
        "docs": kind.docs,
    }
    if param is not None:
        error["param"] = param
    if retry_after is not None:
        error["retryAfter"] = retry_after
    if details is not None:
        error["details"] = details
    return kind.status, {"error": error}


def code_for_status(status: int) -> str:
    """The code an injected 5xx of this HTTP status carries."""
    return _CODE_FOR_STATUS.get(status, "INTERNAL_ERROR")


def fire_envelope(
    *,
    success: bool,
    status: str,
    code: str,
    message: str,
    received_at: str,
    trigger_event_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The legacy fire envelope (brew-api.md §2.1); key order as in the spec's examples."""
    body: dict[str, Any] = {"success": success, "status": status, "code": code, "message": message}
    if trigger_event_id is not None:
        body["triggerEventId"] = trigger_event_id
    body["receivedAt"] = received_at
    if details is not None:
        body["details"] = details
    return body
