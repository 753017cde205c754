"""Boring Marketing's wire format (seed 004): paths, bodies, statuses and errors. Pure.

A route's ``trigger:`` is the pipeline endpoint (``analyze``, ``enrich/brand``, ...:
:data:`~brew_bridge.config.targets.PIPELINES`); a fire is ``POST /brands/{brand_id}/<endpoint>``
whose JSON body is the mapped payload without its ``brand_id`` (the brand is in the
path). The brand is the payload's ``brand_id`` when it has one, else the target's
configured ``brand_id``.

Runs read back as :class:`BmRun`, their status in the bridge's words (``queued`` is
``pending``, ``done`` is ``completed``). Errors are FastAPI's ``{"detail": ...}``; each
becomes an :class:`ApiError` whose ``code`` is the status's name (``NOT_FOUND``, ...),
an :class:`AuthError` for 401/403 (they open the auth gate), a :class:`RateLimited` for
429; a 409's ``X-Running-Run-Id`` is kept in its ``details`` (the run to adopt).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from brew_bridge.config.targets import PIPELINES
from brew_bridge.errors import ApiError, AuthError, RateLimited
from brew_bridge.events import RunRead
from brew_bridge.targets.http import Unreadable
from brew_bridge.timefmt import parse_iso

__all__ = [
    "BRAND_KEY",
    "RUNNING_RUN_ID",
    "STATUSES",
    "BmRun",
    "accepted_run_id",
    "brand_of",
    "error_of",
    "fire_body",
    "pipeline_problem",
    "run_of",
    "running_run_id",
    "runs_of",
    "segment",
]

BRAND_KEY = "brand_id"  # the payload key that picks the brand, taken out of the body
RUNNING_RUN_ID = "running_run_id"  # where a 409's X-Running-Run-Id is kept (ApiError.details)
# The document's statuses in the bridge's words (events.LIVE_STATUSES / TERMINAL_STATUSES).
STATUSES: Mapping[str, str] = {
    "queued": "pending",
    "running": "running",
    "done": "completed",
    "failed": "failed",
}
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    409: "conflict",
    429: "rate_limit_error",
}


def pipeline_problem(action: str) -> str | None:
    """What is wrong with ``action`` as a pipeline endpoint; None when it is one."""
    if action in PIPELINES:
        return None
    return f"{action!r} is not a Boring Marketing pipeline endpoint (one of {', '.join(PIPELINES)})"


def brand_of(payload: Mapping[str, Any], default: str | None) -> str | None:
    """The brand a delivery fires for: the payload's ``brand_id``, else ``default``.

    None when neither names one; a ``brand_id`` that is not a non-empty string (``""``,
    a number) names none either, whatever the default.
    """
    brand = payload.get(BRAND_KEY)
    if brand is None:  # absent, or mapped from an event that has none
        return default
    return brand if isinstance(brand, str) and brand else None


def fire_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The fire's JSON body: the payload, its ``brand_id`` taken out (it is in the path)."""
    return {k: v for k, v in payload.items() if k != BRAND_KEY}


def segment(value: str) -> str:
    """One path segment, escaped (a brand or run id)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class BmRun:
    """One run object (``GET …/runs/{run_id}``, or an entry of the list)."""

    run_id: str
    status: str  # the bridge's word (STATUSES); an unknown word is kept, and means live
    kind: str | None
    error: str | None
    started_at: float | None  # when the run was accepted
    finished_at: float | None
    stage: str | None  # meta.current_stage
    stage_detail: str | None
    stage_started_at: float | None
    has_meta: bool  # the body carried a meta object (the document's list entries may not)

    def run_read(self) -> RunRead:
        """The run as the bridge records it; its stage goes with a bad end's dead letter."""
        logs = ({"kind": self.kind, "stage": self.stage, "detail": self.stage_detail},)
        return RunRead(
            run_id=self.run_id,
            status=self.status,
            error=self.error,
            logs=logs if self.stage is not None else (),
            ended_at=self.finished_at,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def run_of(body: object) -> BmRun:
    """A run object; raises :class:`Unreadable` without an id and a status."""
    if not isinstance(body, dict):
        raise Unreadable("a run is not an object")
    run_id, status = body.get("id"), body.get("status")
    if not isinstance(run_id, str) or not run_id or not isinstance(status, str):
        raise Unreadable("a run has no id or no status")
    meta = body.get("meta")
    has_meta = isinstance(meta, dict)
    meta = meta if isinstance(meta, dict) else {}
    return BmRun(
        run_id=run_id,
        status=STATUSES.get(status, status),
        kind=_text(body.get("kind")),
        error=_text(body.get("error")),
        started_at=parse_iso(_text(body.get("started_at"))),
        finished_at=parse_iso(_text(body.get("finished_at"))),
        stage=_text(meta.get("current_stage")),
        stage_detail=_text(meta.get("stage_detail")),
        stage_started_at=parse_iso(_text(meta.get("stage_started_at"))),
        has_meta=has_meta,
    )


def runs_of(body: object) -> list[BmRun]:
    """The runs of a list answer (``{brand_id, total, runs}``); entries it cannot read
    are left out (their runs are then read by id)."""
    runs = body.get("runs") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        raise Unreadable("a run list has no runs list")
    found = []
    for entry in runs:
        try:
            found.append(run_of(entry))
        except Unreadable:
            continue
    return found


def accepted_run_id(body: object) -> str:
    """The ``run_id`` of a fire's 202 (``{run_id, status: "queued"}``)."""
    run_id = body.get("run_id") if isinstance(body, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise Unreadable("no run_id")
    return run_id


def running_run_id(error: ApiError) -> str | None:
    """The run a 409 says is in progress for the brand (its ``X-Running-Run-Id``)."""
    if error.status != 409 or error.details is None:
        return None
    run_id = error.details.get(RUNNING_RUN_ID)
    return run_id if isinstance(run_id, str) and run_id else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        seconds = float((headers.get("retry-after") or "").strip())
    except ValueError:  # absent, or an HTTP-date: not read
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _code(status: int) -> str:
    if status == 409:
        return "RUN_IN_PROGRESS"
    try:
        return HTTPStatus(status).name
    except ValueError:
        return f"HTTP_{status}"


def error_of(status: int, body: object, headers: Mapping[str, str]) -> ApiError:
    """A non-2xx answer as an error (see the module)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        message = detail
    elif detail is not None:  # FastAPI's validation errors: a list of problems
        message = json.dumps(detail, ensure_ascii=False, separators=(",", ":"))
    else:
        message = f"Boring Marketing answered {status}"
    running = headers.get("x-running-run-id")
    cls = AuthError if status in (401, 403) else RateLimited if status == 429 else ApiError
    return cls(
        status=status,
        code=_code(status),
        type=_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request"),
        message=message,
        retry_after=_retry_after(headers),
        details={RUNNING_RUN_ID: running} if running else None,
        request_id=headers.get("x-request-id"),
        body=body,
    )
