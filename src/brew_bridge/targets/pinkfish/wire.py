"""Pinkfish's wire format (seed 003, "Async Polling"): reading its answers. Pure, no I/O.

* a fire is answered with an empty body and the ids in two headers,
  ``X-Pf-Run-Id`` and ``X-Pf-Automation-Id`` (:func:`triggered`);
* a status read answers ``{automationId, runId, status, stepStatus, stepInfo}``
  (:func:`run_status`), ``status`` one of ``PENDING | RUNNING | COMPLETE | FAILED |
  TIMEOUT`` (:data:`STATUSES` says what each is in the bridge's words);
* a results read answers the run's ``results[]`` (and ``designatedOutput``): kept as
  the object it is (:func:`results`);
* an error's body is not documented: ``{"error": CODE, "message": text}`` is read when
  it is there, the status alone otherwise (:func:`error_of`).

The polling URLs carry the API key in their path, so nothing here ever holds a URL,
and :func:`mask_key_paths` takes the key out of any text that does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from brew_bridge.errors import ApiError, AuthError, RateLimited
from brew_bridge.events import TIMED_OUT
from brew_bridge.targets.http import Unreadable

__all__ = [
    "AUTOMATION_ID_HEADER",
    "RUN_ID_HEADER",
    "STATUSES",
    "RunStatus",
    "Triggered",
    "error_of",
    "mask_key_paths",
    "normalise_status",
    "results",
    "run_status",
    "scrub",
    "triggered",
]

RUN_ID_HEADER: Final = "X-Pf-Run-Id"
AUTOMATION_ID_HEADER: Final = "X-Pf-Automation-Id"
# Pinkfish's statuses in the bridge's words; TIMEOUT (the run exceeded Pinkfish's
# execution time limit) is a terminal status of its own, dead-lettered run_timed_out.
STATUSES: Final[Mapping[str, str]] = {
    "PENDING": "pending",
    "RUNNING": "running",
    "COMPLETE": "completed",
    "FAILED": "failed",
    "TIMEOUT": TIMED_OUT,
}
_KEY_IN_PATH = re.compile(r"(/ext/webhook/)[^/\s\"'?#]+")
_MASK = "***"
_ERROR_TYPES = {
    401: "authentication_error",
    403: "authorization_error",
    404: "not_found",
    429: "rate_limit",
}


def normalise_status(word: str) -> str:
    """A Pinkfish status in the bridge's words; an unknown word lowercased (it is not
    terminal, so the run stays live and is read again)."""
    return STATUSES.get(word.upper(), word.lower())


def mask_key_paths(text: str) -> str:
    """``text`` with the API key of every polling URL in it replaced by ``***``."""
    return _KEY_IN_PATH.sub(rf"\1{_MASK}", text)


def scrub(value: Any, secret: str) -> Any:
    """``value`` (a string, or JSON made of them) with ``secret`` replaced by ``***``."""
    if isinstance(value, str):
        return value.replace(secret, _MASK) if secret else value
    if isinstance(value, dict):
        return {k: scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value


@dataclass(frozen=True)
class Triggered:
    """An accepted fire: the run it started and the automation that runs it."""

    run_id: str
    automation_id: str
    request_id: str | None


def triggered(headers: Mapping[str, str], request_id: str | None) -> Triggered:
    """The ids of a fire's 2xx answer; :class:`Unreadable` when a header is missing
    (the fire may have started a run we cannot follow)."""
    run_id = (headers.get(RUN_ID_HEADER) or "").strip()
    automation_id = (headers.get(AUTOMATION_ID_HEADER) or "").strip()
    if not run_id or not automation_id:
        missing = [
            name
            for name, value in ((RUN_ID_HEADER, run_id), (AUTOMATION_ID_HEADER, automation_id))
            if not value
        ]
        raise Unreadable(f"no {' or '.join(missing)} header")
    return Triggered(run_id, automation_id, request_id)


@dataclass(frozen=True)
class RunStatus:
    """One status read: the run's status and its steps', as Pinkfish sent them."""

    status: str  # Pinkfish's word, e.g. COMPLETE
    step_status: Mapping[str, Any]
    step_info: Mapping[str, Any]

    @property
    def bridge_status(self) -> str:
        return normalise_status(self.status)

    def steps(self) -> tuple[dict[str, Any], ...]:
        """Each step as a log row, in execution order: ``{step, name, status,
        executionOrder}`` (what the bridge keeps as a run's logs)."""
        rows: list[dict[str, Any]] = []
        for key in self.step_status.keys() | self.step_info.keys():
            info = self.step_info.get(key)
            info = info if isinstance(info, Mapping) else {}
            order = info.get("executionOrder")
            rows.append(
                {
                    "step": key,
                    "name": info.get("name"),
                    "status": info.get("status", self.step_status.get(key)),
                    "executionOrder": order if isinstance(order, int) else None,
                }
            )
        return tuple(sorted(rows, key=_step_order))

    def failure(self) -> str | None:
        """What went wrong, for a FAILED or TIMEOUT run (None otherwise)."""
        status = self.status.upper()
        if status not in ("FAILED", "TIMEOUT"):
            return None
        where = next((s for s in self.steps() if str(s["status"]).upper() == status), None)
        at = ""
        if where is not None:
            at = f" at step {where['step']}" + (f" ({where['name']})" if where["name"] else "")
        if status == "TIMEOUT":
            return f"Pinkfish stopped the run{at}: it exceeded its execution time limit (TIMEOUT)"
        return f"Pinkfish run failed{at} (FAILED)"


def _step_order(row: Mapping[str, Any]) -> tuple[float, str]:
    order = row["executionOrder"]
    key = str(row["step"])
    if isinstance(order, int):
        return float(order), key
    return (float(key) if key.isdigit() else math.inf), key


def _mapping(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, Mapping):
        raise Unreadable(f"{name} is not an object")
    return value


def run_status(body: object) -> RunStatus:
    """A status read's body; :class:`Unreadable` when it has no status."""
    if not isinstance(body, dict):
        raise Unreadable("the status body is not an object")
    status = body.get("status")
    if not isinstance(status, str) or not status:
        raise Unreadable("the status body has no status")
    return RunStatus(
        status=status,
        step_status=_mapping(body, "stepStatus"),
        step_info=_mapping(body, "stepInfo"),
    )


def results(body: object) -> dict[str, Any]:
    """A results read's body, as the object it is."""
    if not isinstance(body, dict):
        raise Unreadable("the results body is not an object")
    return dict(body)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        seconds = float((headers.get("retry-after") or "").strip())
    except ValueError:  # absent, or an HTTP-date: not read
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_of(
    status: int, body: object, headers: Mapping[str, str], *, secret: str = ""
) -> ApiError:
    """A non-2xx answer as an error: :class:`AuthError` for 401/403 (opens the auth
    gate), :class:`RateLimited` for 429, :class:`ApiError` otherwise. Its code is the
    body's ``error`` when it names one, ``HTTP_<status>`` otherwise; ``secret`` (the API
    key) is taken out of everything the error keeps, in case an answer echoes the URL."""
    code = f"HTTP_{status}"
    message = f"Pinkfish answered {status}"
    if isinstance(body, dict):
        if isinstance(body.get("error"), str) and body["error"]:
            code = body["error"]
        if isinstance(body.get("message"), str) and body["message"]:
            message = body["message"]
    cls = AuthError if status in (401, 403) else RateLimited if status == 429 else ApiError
    error_type = _ERROR_TYPES.get(status, "internal_error" if status >= 500 else "invalid_request")
    return cls(
        status=status,
        code=mask_key_paths(scrub(code, secret)),
        type=error_type,
        message=mask_key_paths(scrub(message, secret)),
        retry_after=_retry_after(headers),
        request_id=headers.get("x-request-id"),
        body=scrub(body, secret),
    )
