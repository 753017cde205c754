"""Brew's wire format: status words, result types, and parsing of answers. Pure, no I/O.

Both API generations (brew-api.md §11) are read here: fire run ids from
``details.automationRunIds`` (9.3) or the top level (10.x); run statuses normalised
(``queued`` → ``pending``, ``cancelled`` → ``canceled``); run lists under ``data`` or the
seeds' ``runs``. :class:`~brew_bridge.targets.brew.client.BrewClient` chooses the routes
and hands the bodies to these functions.

A non-2xx answer becomes :class:`AuthError` (401/403), :class:`RateLimited` (429) or
:class:`ApiError`, parsed the way the official SDK parses it (brew-sdk-behaviour.md §6):
see :func:`error_from_response`. A 2xx body that cannot be read raises
:class:`Unreadable`, which the client turns into ``UnknownOutcome``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from brew_bridge.errors import ApiError, AuthError, RateLimited
from brew_bridge.events import LIVE_STATUSES, TERMINAL_STATUSES, TIMED_OUT
from brew_bridge.targets.http import Unreadable

__all__ = [
    "BREW_LIVE_STATUSES",
    "BREW_TERMINAL_STATUSES",
    "FIRE_SUCCESS_STATUSES",
    "FireResult",
    "RunInfo",
    "RunPage",
    "Unreadable",
    "encode_path_segment",
    "error_from_response",
    "fire_result",
    "is_bare_fire_body",
    "json_object",
    "listed_run",
    "normalise_status",
    "readiness_from_fire_check",
    "run_info",
    "run_page",
    "trigger_row",
]

# -- status words ------------------------------------------------------------------------

FIRE_SUCCESS_STATUSES: Final = frozenset({"triggered", "idempotent_replay"})
# Brew's spellings of the bridge's words (events.py).
_STATUS_ALIASES: Final[Mapping[str, str]] = {"queued": "pending", "cancelled": "canceled"}


def _brew_words(statuses: Collection[str]) -> frozenset[str]:
    """The bridge's words plus Brew's aliases of them, so raw strings can be checked too."""
    return frozenset(statuses) | {raw for raw, ours in _STATUS_ALIASES.items() if ours in statuses}


BREW_LIVE_STATUSES: Final = _brew_words(LIVE_STATUSES)
# timed_out is the poller's verdict, never a word Brew sends.
BREW_TERMINAL_STATUSES: Final = _brew_words(TERMINAL_STATUSES - {TIMED_OUT})


def normalise_status(status: str) -> str:
    """One vocabulary for both generations: ``queued`` → ``pending``, ``cancelled`` →
    ``canceled``; other values unchanged (an unknown status is neither live nor terminal
    by name, and callers treat what is not terminal as live)."""
    return _STATUS_ALIASES.get(status, status)


def encode_path_segment(value: str) -> str:
    """Encode an id like JavaScript's ``encodeURIComponent`` (``:`` becomes ``%3A``)."""
    return quote(value, safe="-_.!~*'()")


# -- result types ------------------------------------------------------------------------


@dataclass(frozen=True)
class FireResult:
    """An accepted fire: Brew started (or, on replay, had started) these runs."""

    status: str  # "triggered" | "idempotent_replay"
    code: str
    trigger_instance_id: str | None
    run_ids: tuple[str, ...]  # details.automationRunIds (9.3) or top-level (10.x)
    request_id: str | None


@dataclass(frozen=True)
class RunInfo:
    """One automation run as Brew reported it, status normalised."""

    run_id: str
    automation_id: str
    status: str  # queued -> pending, cancelled -> canceled; anything else as sent
    trigger_instance_id: str | None
    started_at: str | None
    completed_at: str | None
    error: str | None
    logs: tuple[dict[str, Any], ...] | None
    recipient_email: str | None = None


@dataclass(frozen=True)
class RunPage:
    """One page of a run list; follow ``cursor`` while ``has_more``."""

    runs: tuple[RunInfo, ...]
    cursor: str | None
    has_more: bool


# -- error answers -----------------------------------------------------------------------

_ERROR_TYPES = frozenset(
    {
        "authentication_error",
        "authorization_error",
        "invalid_request",
        "not_found",
        "not_implemented",
        "conflict",
        "rate_limit",
        "payment_required",
        "service_unavailable",
        "internal_error",
    }
)
# The fields the SDK requires, as strings, of a standard envelope.
_ENVELOPE_FIELDS = ("code", "type", "message", "suggestion", "docs")
_FIRE_DOCS = "https://docs.brew.new/api-reference/public-v1/automations/fire-a-trigger"
_ERRORS_DOCS = "https://docs.brew.new/api-reference/api/errors"
_RETRY_SUGGESTION = "Retry the request. If it keeps failing, contact support."
_FIX_SUGGESTION = (
    "Fix the request before sending it again — the same request fails the same way. "
    "See `details` for the specifics when present."
)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _header_retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return _finite(float(raw.strip()))
    except ValueError:  # an HTTP-date is not parsed, like the official SDK
        return None


def _type_for_status(status: int) -> str:
    known = {
        401: "authentication_error",
        402: "payment_required",
        403: "authorization_error",
        404: "not_found",
        409: "conflict",
        429: "rate_limit",
        501: "not_implemented",
        503: "service_unavailable",
    }
    if status in known:
        return known[status]
    return "internal_error" if status >= 500 else "invalid_request"


def _suggestion_for_status(status: int) -> str:
    return _RETRY_SUGGESTION if status == 408 or status == 429 or status >= 500 else _FIX_SUGGESTION


def _error_class(status: int) -> type[ApiError]:
    if status in (401, 403):
        return AuthError
    if status == 429:
        return RateLimited
    return ApiError


def _details(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_sdk_envelope(envelope: Mapping[str, Any]) -> bool:
    return (
        all(isinstance(envelope.get(name), str) for name in _ENVELOPE_FIELDS)
        and envelope["type"] in _ERROR_TYPES
    )


def _from_envelope(
    status: int,
    envelope: Mapping[str, Any],
    body: object,
    headers: Mapping[str, str],
) -> ApiError:
    """The error an ``error`` object with ``code`` and ``message`` strings describes;
    what it lacks comes from the status (a full SDK envelope lacks nothing)."""
    kind, suggestion, docs = envelope.get("type"), envelope.get("suggestion"), envelope.get("docs")
    body_retry_after = _finite(envelope.get("retryAfter"))
    return _error_class(status)(
        status=status,
        code=envelope["code"],
        type=kind if isinstance(kind, str) and kind in _ERROR_TYPES else _type_for_status(status),
        message=envelope["message"],
        param=_opt_str(envelope.get("param")),
        suggestion=suggestion if isinstance(suggestion, str) else _suggestion_for_status(status),
        docs=docs if isinstance(docs, str) else _ERRORS_DOCS,
        retry_after=body_retry_after
        if body_retry_after is not None
        else _header_retry_after(headers),
        details=_details(envelope.get("details")),
        request_id=headers.get("x-request-id"),
        body=body,
    )


def error_from_response(status: int, body: object, headers: Mapping[str, str]) -> ApiError:
    """A typed error from a non-2xx answer, parsed in the official SDK's order.

    1. The standard envelope: ``error`` with ``code``, ``type`` (a known one),
       ``message``, ``suggestion``, ``docs`` all strings; ``retryAfter`` from the body,
       else the ``Retry-After`` header.
    2. The legacy fire envelope: ``success: false`` with ``code`` and ``message``
       strings; type and suggestion from the status, ``retryAfter`` from the header.
    3. (Ours, not the SDK's) an ``error`` object with at least ``code`` and ``message``
       strings — e.g. ``409 IDEMPOTENCY_IN_PROGRESS`` without ``suggestion``/``docs`` —
       keeps its code, so the retry decision can still see it.
    4. Anything else: ``unknown_error``, ``Request failed with status N``.

    ``headers`` must look names up case-insensitively (``httpx.Headers`` does).
    """
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict) and _is_sdk_envelope(envelope):
        return _from_envelope(status, envelope, body, headers)
    cls = _error_class(status)
    if (
        isinstance(body, dict)
        and body.get("success") is False
        and isinstance(body.get("code"), str)
        and isinstance(body.get("message"), str)
    ):
        return cls(
            status=status,
            code=body["code"],
            type=_type_for_status(status),
            message=body["message"],
            suggestion=_suggestion_for_status(status),
            docs=_FIRE_DOCS,
            retry_after=_header_retry_after(headers),
            details=_details(body.get("details")),
            request_id=headers.get("x-request-id"),
            body=body,
        )
    if (
        isinstance(envelope, dict)
        and isinstance(envelope.get("code"), str)
        and isinstance(envelope.get("message"), str)
    ):
        return _from_envelope(status, envelope, body, headers)
    return cls(
        status=status,
        code="unknown_error",
        type=_type_for_status(status),
        message=f"Request failed with status {status}",
        suggestion=_suggestion_for_status(status),
        docs=_ERRORS_DOCS,
        retry_after=_header_retry_after(headers),
        request_id=headers.get("x-request-id"),
        body=body,
    )


# -- success answers ---------------------------------------------------------------------


def json_object(body: object) -> dict[str, Any]:
    """A body that must be a JSON object, as a dict of its own."""
    if not isinstance(body, dict):
        raise Unreadable("the body is not an object")
    return dict(body)


def is_bare_fire_body(body: object) -> bool:
    """Whether a fire answer is 10.x's bare body (9.3 wraps it in ``success``/``details``)."""
    return isinstance(body, dict) and "success" not in body and "automationRunIds" in body


def fire_result(status: int, answered: object, request_id: str | None) -> FireResult:
    """The fire a 2xx body (either generation's) reports.

    A body that does not accept the fire (legacy ``success: false``, or a status other
    than ``triggered``/``idempotent_replay``) raises :class:`ApiError`; one that is not
    an object or has no list of run ids raises :class:`Unreadable`.
    """
    body = json_object(answered)
    fire_status = body.get("status")
    if body.get("success") is False or fire_status not in FIRE_SUCCESS_STATUSES:
        raw_code = body.get("code")
        raise ApiError(
            status=status,
            code=raw_code if isinstance(raw_code, str) else "UNEXPECTED_FIRE_STATUS",
            type="invalid_request",
            message=f"fire answered {status} with status {fire_status!r}, "
            "expected triggered or idempotent_replay",
            suggestion=_FIX_SUGGESTION,
            details=_details(body.get("details")),
            request_id=request_id,
            body=body,
        )
    details = _details(body.get("details")) or {}
    run_ids = details.get("automationRunIds", body.get("automationRunIds"))
    if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
        raise Unreadable("no automationRunIds list of strings")
    code = body.get("code")
    tin = details.get("triggerInstanceId", body.get("triggerInstanceId"))
    return FireResult(
        status=fire_status,
        code=code if isinstance(code, str) else fire_status.upper(),
        trigger_instance_id=tin if isinstance(tin, str) else None,
        run_ids=tuple(run_ids),
        request_id=request_id,
    )


def run_info(row: object, sibling_logs: object = None) -> RunInfo:
    """One run row (``logs`` from the row, else ``sibling_logs``), status normalised."""
    if not isinstance(row, dict):
        raise Unreadable("a run row is not an object")
    run_id, automation_id, status = (
        row.get("automationRunId"),
        row.get("automationId"),
        row.get("status"),
    )
    if not (isinstance(run_id, str) and isinstance(status, str)):
        raise Unreadable("a run row lacks automationRunId or status")
    raw_logs = row.get("logs", sibling_logs)
    logs = (
        tuple(dict(entry) for entry in raw_logs if isinstance(entry, dict))
        if isinstance(raw_logs, list)
        else None
    )
    return RunInfo(
        run_id=run_id,
        automation_id=automation_id if isinstance(automation_id, str) else "",
        status=normalise_status(status),
        trigger_instance_id=_opt_str(row.get("triggerInstanceId")),
        started_at=_opt_str(row.get("startedAt")),
        completed_at=_opt_str(row.get("completedAt")),
        error=_opt_str(row.get("error")),
        logs=logs,
        recipient_email=_opt_str(row.get("recipientEmail")),
    )


def _rows(body: object) -> list[Any]:
    """Run rows under ``data`` (the contract) or ``runs`` (the seeds)."""
    if isinstance(body, dict):
        for key in ("data", "runs"):
            rows = body.get(key)
            if isinstance(rows, list):
                return rows
    raise Unreadable("no data (or runs) list in the answer")


def run_page(body: Any) -> RunPage:
    """A run list answer; without ``pagination`` it is the last page."""
    runs = tuple(run_info(row) for row in _rows(body))
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        return RunPage(runs, None, False)
    next_cursor = _opt_str(pagination.get("cursor"))
    has_more = pagination.get("hasMore")
    more = has_more if isinstance(has_more, bool) else next_cursor is not None
    return RunPage(runs, next_cursor, more and next_cursor is not None)


def listed_run(body: Any, run_id: str, request_id: str | None) -> RunInfo:
    """The run a 9.3 ``?automationRunId=`` list answer holds; an empty list is a 404."""
    rows = _rows(body)
    if not rows:
        raise ApiError(
            status=404,
            code="AUTOMATION_RUN_NOT_FOUND",
            type="not_found",
            message=f"Automation run '{run_id}' was not found (empty page).",
            param="automationRunId",
            request_id=request_id,
            body=body,
        )
    return run_info(rows[0], body.get("logs"))


def readiness_from_fire_check(body: Mapping[str, Any]) -> dict[str, Any]:
    """The 9.3 ``GET …/fire`` envelope with 10.x's ``ready`` added unless present: true
    when the trigger loads and has at least one published automation."""
    details = body.get("details")
    counts = details.get("counts") if isinstance(details, dict) else None
    published = counts.get("automations") if isinstance(counts, dict) else None
    readiness = dict(body)
    readiness.setdefault(
        "ready", body.get("success") is True and isinstance(published, int) and published > 0
    )
    return readiness


def trigger_row(body: object) -> dict[str, Any]:
    """The first row of a 9.3 trigger list answer."""
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise Unreadable("no trigger row")
    return dict(rows[0])
