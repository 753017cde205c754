"""The JSON bodies the simulator answers with: pure functions of a run and a moment.

The status and results bodies are the seed document's examples, key for key. The error
body is ours (the document shows none): ``{"error": CODE, "message": text}`` with the
status of :data:`ERRORS`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from brew_bridge.sim.pinkfish.runclock import StepView
from brew_bridge.sim.pinkfish.state import Run
from brew_bridge.timefmt import iso_utc

__all__ = ["ERRORS", "FILES_URL", "code_for_status", "error_body", "results_body", "status_body"]

# Where the result files are said to be (not served: the document's host).
FILES_URL = "https://run-files.app.pinkfish.ai"

# code -> (HTTP status, message)
ERRORS: dict[str, tuple[int, str]] = {
    "MISSING_API_KEY": (401, "No API key: send X-API-KEY (or put the key in the path)."),
    "INVALID_API_KEY": (401, "The API key is not valid."),
    "API_KEY_REVOKED": (401, "The API key has been revoked."),
    "TRIGGER_NOT_FOUND": (404, "No such trigger."),
    "RUN_NOT_FOUND": (404, "No such run for this automation."),
    "NOT_FOUND": (404, "No such route."),
    "METHOD_NOT_ALLOWED": (405, "Method not allowed here."),
    "INVALID_REQUEST": (400, "The request is not valid."),
    "SYNC_NOT_SUPPORTED": (
        400,
        "This simulator only serves the async pattern: send x-api-wait: false or omit it.",
    ),
    "RATE_LIMITED": (429, "Too many requests; retry after the Retry-After seconds."),
    "INTERNAL_ERROR": (500, "Internal error."),
    "BAD_GATEWAY": (502, "Bad gateway."),
    "SERVICE_UNAVAILABLE": (503, "Service unavailable."),
    "GATEWAY_TIMEOUT": (504, "Gateway timeout."),
}
_CODE_OF_STATUS = {status: code for code, (status, _) in reversed(ERRORS.items())}
# What each way a step ends leaves behind, and its exit code.
_STEP_FILES = {
    "COMPLETE": (("output.txt", "stdout.txt"), 0),
    "FAILED": (("stdout.txt", "stderr.txt"), 1),
    "TIMEOUT": (("stdout.txt",), 124),  # what `timeout` exits with
}


def error_body(code: str, message: str | None = None) -> tuple[int, dict[str, Any]]:
    status, default = ERRORS[code]
    return status, {"error": code, "message": message or default}


def code_for_status(status: int) -> str:
    return _CODE_OF_STATUS.get(status, "INTERNAL_ERROR")


def status_body(run: Run, now: float) -> dict[str, Any]:
    """``GET …/status``: the run's status and every step's."""
    steps = run.steps(now)
    return {
        "automationId": run.automation_id,
        "runId": run.run_id,
        "status": run.status(now),
        "stepStatus": {str(s.index): s.status for s in steps},
        "stepInfo": {
            str(s.index): {"status": s.status, "name": s.name, "executionOrder": s.index}
            for s in steps
        },
    }


def _size(*parts: str) -> int:
    """A file's size: made up, but the same on every read."""
    return 10 + int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:2]) % 4000


def _file(run: Run, index: int, name: str) -> dict[str, Any]:
    where = f"{FILES_URL}/{run.automation_id}/{run.run_id}/{index}/{name}"
    return {"url": where, "mimeType": "text/plain", "size": _size(run.run_id, str(index), name)}


def _step_result(run: Run, step: StepView, version: int) -> dict[str, Any]:
    names, exit_code = _STEP_FILES[step.status]
    assert step.started_at is not None
    assert step.ended_at is not None
    return {
        "stepIndex": step.index,
        "stepVersion": version,
        "resultUrls": {name: _file(run, step.index, name) for name in names},
        "exitCode": exit_code,
        "duration": round((step.ended_at - step.started_at) * 1000),
    }


def results_body(run: Run, now: float) -> dict[str, Any]:
    """``GET …/results``: the steps that ended so far (all of them once the run has),
    and the designated output of a ``COMPLETE`` run whose trigger has one."""
    spec = run.spec
    status = run.status(now)
    body: dict[str, Any] = {
        "automationId": run.automation_id,
        "automationVersion": spec.automation_version,
        "automationName": spec.automation_name,
        "id": run.run_id,
        "type": "TRIGGER",
        "results": [
            _step_result(run, step, spec.automation_version)
            for step in run.steps(now)
            if step.ended_at is not None
        ],
        "started": iso_utc(run.plan.created_at, timespec="seconds"),
        "status": status,
    }
    output = spec.designated_output
    if output is not None and status == "COMPLETE":
        where = _file(run, len(run.plan.steps), output.file_name)["url"]
        body["designatedOutput"] = {
            "url": where,
            "fileName": output.file_name,
            "mimeType": output.mime_type,
            "size": output.size,
        }
    return body
