"""The Brew API client: fire triggers, read and cancel runs, read triggers.

:class:`BrewClient` receives one pooled ``httpx.AsyncClient`` (:func:`build_http_client`)
and makes exactly one attempt per call: retries are the caller's decision
(``retry.next_delay``), because the dispatcher keeps them in the outbox, not in memory.
Before each request it waits for the rate budget of the endpoint's policy (that wait is
never an attempt) and after each answer it feeds the budget Brew's ``X-RateLimit-*``.

Every outcome is typed at this boundary (``errors.py``):

* a non-2xx answer becomes :class:`AuthError` (401/403), :class:`RateLimited`
  (429) or :class:`ApiError`, parsed the way the official SDK parses it
  (brew-sdk-behaviour.md §6): the standard ``{error: {...}}`` envelope, then the
  legacy fire envelope (``success: false``), then a fallback built from the status;
* no answer: :class:`TransportError` when the request was never sent (connect
  failure), :class:`UnknownOutcome` when it was (timeout, reset): Brew may have
  acted, and a fire is resolved by firing again with the same Idempotency-Key.

It speaks both API generations (brew-api.md §11): fire run ids from
``details.automationRunIds`` (9.3) or the top level (10.x); run statuses normalised
(``queued`` → ``pending``, ``cancelled`` → ``canceled``); run lists under ``data`` or the
seeds' ``runs``; run detail by ``?automationRunId=`` (9.3) or ``/runs/{id}`` (10.x). With
``api_shape="auto"`` it starts with 9.3 and switches for good to 10.x the first time the
server shows it speaks 10.x (a bare fire body, ``?automationRunId=`` refused with
``400 INVALID_REQUEST``, ``status=pending`` refused, the 9.3 cancel or ready route
refused as unknown).

The API key comes from a callable, read for every request, so a rotated key (file or
environment) is picked up without a restart. It is never logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import structlog

from brew_bridge import __version__
from brew_bridge.config import BrewConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.observe.metrics import Metrics

__all__ = [
    "FIRE_SUCCESS_STATUSES",
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "USER_AGENT",
    "BrewClient",
    "FireResult",
    "RunInfo",
    "RunPage",
    "build_http_client",
    "encode_path_segment",
    "error_from_response",
    "normalise_status",
]

log = structlog.get_logger(__name__)

USER_AGENT = f"brew-bridge/{__version__}"

FIRE_SUCCESS_STATUSES = frozenset({"triggered", "idempotent_replay"})
# Both spellings and both generations, so raw strings can be checked too.
LIVE_STATUSES = frozenset({"pending", "queued", "scheduled", "running", "paused"})
TERMINAL_STATUSES = frozenset(
    {"completed", "partially_completed", "failed", "canceled", "cancelled"}
)
_STATUS_ALIASES = {"queued": "pending", "cancelled": "canceled"}

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
_FIRE_DOCS = "https://docs.brew.new/api-reference/public-v1/automations/fire-a-trigger"
_ERRORS_DOCS = "https://docs.brew.new/api-reference/api/errors"
_RETRY_SUGGESTION = "Retry the request. If it keeps failing, contact support."
_FIX_SUGGESTION = (
    "Fix the request before sending it again — the same request fails the same way. "
    "See `details` for the specifics when present."
)
_MAX_KEY_LENGTH = 100
# Codes a server answers for a route it does not have (the other API generation's).
_NO_SUCH_ROUTE = frozenset({"NOT_FOUND", "METHOD_NOT_ALLOWED"})

Shape = Literal["9.3", "10"]


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


@dataclass(frozen=True)
class RunPage:
    """One page of a run list; follow ``cursor`` while ``has_more``."""

    runs: tuple[RunInfo, ...]
    cursor: str | None
    has_more: bool


def normalise_status(status: str) -> str:
    """One vocabulary for both generations: ``queued`` → ``pending``, ``cancelled`` →
    ``canceled``; other values unchanged (an unknown status is neither live nor terminal
    by name, and callers treat what is not terminal as live)."""
    return _STATUS_ALIASES.get(status, status)


def encode_path_segment(value: str) -> str:
    """Encode an id like JavaScript's ``encodeURIComponent`` (``:`` becomes ``%3A``)."""
    return quote(value, safe="-_.!~*'()")


def build_http_client(config: BrewConfig) -> httpx.AsyncClient:
    """The one pooled HTTP client for Brew: base URL, timeouts and pool from config.

    ``timeout_seconds`` bounds reads, writes and the wait for a pooled connection;
    :class:`BrewClient` also bounds each whole attempt, body included, by it.
    """
    timeout = httpx.Timeout(
        config.timeout_seconds,
        connect=min(config.connect_timeout_seconds, config.timeout_seconds),
    )
    limits = httpx.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_connections,
    )
    return httpx.AsyncClient(
        base_url=config.base_url.rstrip("/") + "/",
        timeout=timeout,
        limits=limits,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


# -- error parsing (pure) ----------------------------------------------------------------


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
    cls = _error_class(status)
    request_id = headers.get("x-request-id")
    header_retry_after = _header_retry_after(headers)
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict):
        code, kind, message = envelope.get("code"), envelope.get("type"), envelope.get("message")
        suggestion, docs = envelope.get("suggestion"), envelope.get("docs")
        param = envelope.get("param")
        body_retry_after = _finite(envelope.get("retryAfter"))
        if (
            isinstance(code, str)
            and isinstance(kind, str)
            and kind in _ERROR_TYPES
            and isinstance(message, str)
            and isinstance(suggestion, str)
            and isinstance(docs, str)
        ):
            return cls(
                status=status,
                code=code,
                type=kind,
                message=message,
                param=param if isinstance(param, str) else None,
                suggestion=suggestion,
                docs=docs,
                retry_after=body_retry_after
                if body_retry_after is not None
                else header_retry_after,
                details=_details(envelope.get("details")),
                request_id=request_id,
                body=body,
            )
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
            retry_after=header_retry_after,
            details=_details(body.get("details")),
            request_id=request_id,
            body=body,
        )
    if isinstance(envelope, dict):
        code, message = envelope.get("code"), envelope.get("message")
        if isinstance(code, str) and isinstance(message, str):
            kind = envelope.get("type")
            param, suggestion, docs = (
                envelope.get("param"),
                envelope.get("suggestion"),
                envelope.get("docs"),
            )
            body_retry_after = _finite(envelope.get("retryAfter"))
            return cls(
                status=status,
                code=code,
                type=kind
                if isinstance(kind, str) and kind in _ERROR_TYPES
                else _type_for_status(status),
                message=message,
                param=param if isinstance(param, str) else None,
                suggestion=suggestion
                if isinstance(suggestion, str)
                else _suggestion_for_status(status),
                docs=docs if isinstance(docs, str) else _ERRORS_DOCS,
                retry_after=body_retry_after
                if body_retry_after is not None
                else header_retry_after,
                details=_details(envelope.get("details")),
                request_id=request_id,
                body=body,
            )
    return cls(
        status=status,
        code="unknown_error",
        type=_type_for_status(status),
        message=f"Request failed with status {status}",
        suggestion=_suggestion_for_status(status),
        docs=_ERRORS_DOCS,
        retry_after=header_retry_after,
        request_id=request_id,
        body=body,
    )


# -- success parsing (pure) --------------------------------------------------------------


class _Unreadable(Exception):
    """A 2xx answer we cannot interpret (becomes UnknownOutcome with context)."""


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _run_info(row: object, sibling_logs: object = None) -> RunInfo:
    if not isinstance(row, dict):
        raise _Unreadable("a run row is not an object")
    run_id, automation_id, status = (
        row.get("automationRunId"),
        row.get("automationId"),
        row.get("status"),
    )
    if not (isinstance(run_id, str) and isinstance(status, str)):
        raise _Unreadable("a run row lacks automationRunId or status")
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
    )


def _rows(body: object) -> list[Any]:
    """Run rows under ``data`` (the contract) or ``runs`` (the seeds)."""
    if isinstance(body, dict):
        for key in ("data", "runs"):
            rows = body.get(key)
            if isinstance(rows, list):
                return rows
    raise _Unreadable("no data (or runs) list in the answer")


# -- the client --------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: Any
    headers: httpx.Headers
    request_id: str | None


class BrewClient:
    """One attempt per call against Brew's v1 automations API (see the module docstring).

    ``api_key`` is called for every request (rotation without restart); ``budgets``
    paces requests per policy (``fire`` for fires, ``run_read`` for run reads and
    cancels — the route Brew counts them on — and ``trigger_read`` for trigger reads);
    ``api_shape`` is "auto", "9.3" or "10"; ``attempt_timeout`` bounds each attempt,
    body included (default: the HTTP client's read timeout).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: Callable[[], str],
        brand_id: str | None = None,
        budgets: RateBudgets | None = None,
        metrics: Metrics | None = None,
        api_shape: str = "auto",
        attempt_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if api_shape not in ("auto", "9.3", "10"):
            raise ValueError(f'api_shape must be "auto", "9.3" or "10", got {api_shape!r}')
        self._http = http
        self._api_key = api_key
        self._brand_id = brand_id
        self._budgets = budgets
        self._metrics = metrics
        self._auto = api_shape == "auto"
        self._shape: Shape = "10" if api_shape == "10" else "9.3"
        read_timeout = http.timeout.read
        self._attempt_timeout = (
            attempt_timeout
            if attempt_timeout is not None
            else (read_timeout if read_timeout is not None else 30.0)
        )
        self._clock = clock

    @property
    def api_shape(self) -> str:
        """The API generation in use now: "9.3" or "10" (``auto`` may have switched)."""
        return self._shape

    def _switch_to_10(self, why: str) -> None:
        if self._auto and self._shape != "10":
            self._shape = "10"
            log.warning("brew api shape switched", api_shape="10", reason=why)

    # -- one request ---------------------------------------------------------------------

    def _headers(self, *, body: bool, idempotency_key: str | None) -> dict[str, str]:
        try:
            key = self._api_key()
        except Exception as exc:
            raise self._missing_key(f"reading the API key failed: {type(exc).__name__}") from exc
        key = key.strip() if isinstance(key, str) else ""
        if not key:
            raise self._missing_key("the API key is empty")
        headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if body:
            headers["Content-Type"] = "application/json"
        if self._brand_id:
            headers["X-Brand-Id"] = self._brand_id
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    @staticmethod
    def _missing_key(why: str) -> AuthError:
        return AuthError(
            status=401,
            code="API_KEY_MISSING",
            type="authentication_error",
            message=f"No usable Brew API key ({why}).",
            suggestion="Set BREW_API_KEY or point brew.api_key_file at a file holding the key.",
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        policy: str,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> _Answer:
        """Send once (after the budget), return a 2xx answer or raise a typed error."""
        headers = self._headers(body=json_body is not None, idempotency_key=idempotency_key)
        grant: int | None = None
        if self._budgets is not None:
            grant = (await self._budgets.reserve(policy)).grant
        sent: bool | None = None  # None: the transport reports no progress (tests)

        async def trace(event: str, _info: Mapping[str, Any]) -> None:
            nonlocal sent
            if event.endswith("send_request_headers.started"):
                sent = True
            elif sent is None:
                sent = False

        started = time.perf_counter()
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(self._attempt_timeout):
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    extensions={"trace": trace},
                )
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
            httpx.LocalProtocolError,
            httpx.ProxyError,
        ) as exc:
            self._no_answer(endpoint, policy, grant, started, sent=False)
            raise TransportError(
                f"{method} {endpoint}: not sent ({type(exc).__name__}: {exc})"
            ) from exc
        except (httpx.TransportError, TimeoutError) as exc:
            was_sent = sent is not False
            self._no_answer(endpoint, policy, grant, started, sent=was_sent)
            what = (
                "timed out"
                if isinstance(exc, TimeoutError | httpx.TimeoutException)
                else (f"connection failed ({type(exc).__name__}: {exc})")
            )
            if not was_sent:
                raise TransportError(f"{method} {endpoint}: {what} before sending") from exc
            raise UnknownOutcome(
                f"{method} {endpoint}: {what} after the request was sent; Brew may have acted on it"
            ) from exc
        except httpx.HTTPError as exc:  # e.g. a body that fails to decode: it was answered
            self._no_answer(endpoint, policy, grant, started, sent=True)
            raise UnknownOutcome(
                f"{method} {endpoint}: unreadable answer ({type(exc).__name__}: {exc})"
            ) from exc
        except BaseException:  # cancelled (or a bug): give the slot back before leaving
            self._no_answer(endpoint, policy, grant, started, sent=sent is not False)
            raise
        return self._answer(response, endpoint, policy, grant, started)

    def _no_answer(
        self, endpoint: str, policy: str, grant: int | None, started: float, *, sent: bool
    ) -> None:
        if self._budgets is not None:
            self._budgets.observe(policy, None, self._clock(), grant=grant, sent=sent)
        if self._metrics is not None:
            self._metrics.http_requests.labels(endpoint=endpoint, status="error").inc()
            self._metrics.http_request_duration.labels(endpoint=endpoint).observe(
                time.perf_counter() - started
            )

    def _answer(
        self,
        response: httpx.Response,
        endpoint: str,
        policy: str,
        grant: int | None,
        started: float,
    ) -> _Answer:
        duration = time.perf_counter() - started
        status = response.status_code
        request_id = response.headers.get("x-request-id")
        try:
            body: Any = json.loads(response.content) if response.content else None
        except ValueError:
            body = None
            readable = False
        else:
            readable = True
        error = None if 200 <= status < 300 else error_from_response(status, body, response.headers)
        if self._budgets is not None:
            self._budgets.observe(
                policy,
                response.headers,
                self._clock(),
                status=status,
                retry_after=error.retry_after if error is not None else None,
                grant=grant,
            )
        if self._metrics is not None:
            self._metrics.http_requests.labels(endpoint=endpoint, status=str(status)).inc()
            self._metrics.http_request_duration.labels(endpoint=endpoint).observe(duration)
        log.debug(
            "brew answered",
            endpoint=endpoint,
            status=status,
            duration_ms=round(duration * 1000, 1),
            request_id=request_id,
            code=error.code if error is not None else None,
        )
        if error is not None:
            raise error
        if not readable:
            raise UnknownOutcome(
                f"{endpoint}: answered {status} with a body that is not JSON [{request_id}]"
            )
        return _Answer(status, body, response.headers, request_id)

    @staticmethod
    def _unreadable(endpoint: str, answer: _Answer, exc: _Unreadable) -> UnknownOutcome:
        return UnknownOutcome(
            f"{endpoint}: answered {answer.status} with a body we cannot read ({exc}) "
            f"[{answer.request_id}]"
        )

    # -- fire ----------------------------------------------------------------------------

    async def fire(
        self, trigger_event_id: str, payload: Mapping[str, Any], idempotency_key: str
    ) -> FireResult:
        """Fire a trigger once (after waiting for the ``fire`` budget).

        ``idempotency_key`` goes in the ``Idempotency-Key`` header only (10.x bodies
        refuse the legacy body field); a repeat with the same key and payload within
        24 h answers ``idempotent_replay`` with the original run ids.
        """
        if not 1 <= len(idempotency_key) <= _MAX_KEY_LENGTH:
            raise ValueError(
                f"idempotency_key must be 1 to {_MAX_KEY_LENGTH} characters, "
                f"got {len(idempotency_key)}"
            )
        answer = await self._request(
            "POST",
            f"v1/automations/triggers/{encode_path_segment(trigger_event_id)}/fire",
            endpoint="fire",
            policy="fire",
            json_body={"payload": dict(payload)},
            idempotency_key=idempotency_key,
        )
        body = answer.body
        if not isinstance(body, dict):
            raise self._unreadable("fire", answer, _Unreadable("the body is not an object"))
        if "success" not in body and "automationRunIds" in body:
            self._switch_to_10("fire answered the bare 10.x body")
        status = body.get("status")
        if body.get("success") is False or status not in FIRE_SUCCESS_STATUSES:
            raw_code = body.get("code")
            raise ApiError(
                status=answer.status,
                code=raw_code if isinstance(raw_code, str) else "UNEXPECTED_FIRE_STATUS",
                type="invalid_request",
                message=f"fire answered {answer.status} with status {status!r}, "
                "expected triggered or idempotent_replay",
                suggestion=_FIX_SUGGESTION,
                details=_details(body.get("details")),
                request_id=answer.request_id,
                body=body,
            )
        details = _details(body.get("details")) or {}
        run_ids = details.get("automationRunIds", body.get("automationRunIds"))
        if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
            raise self._unreadable(
                "fire", answer, _Unreadable("no automationRunIds list of strings")
            )
        code = body.get("code")
        tin = details.get("triggerInstanceId", body.get("triggerInstanceId"))
        return FireResult(
            status=status,
            code=code if isinstance(code, str) else status.upper(),
            trigger_instance_id=tin if isinstance(tin, str) else None,
            run_ids=tuple(run_ids),
            request_id=answer.request_id,
        )

    # -- runs ----------------------------------------------------------------------------

    def _status_filter(self, status: str) -> str:
        wire = normalise_status(status)
        return "queued" if self._shape == "10" and wire == "pending" else wire

    async def list_runs(
        self,
        *,
        trigger_event_id: str | None = None,
        from_: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (``from_``: ISO time; ``status`` in either
        generation's words)."""
        params: dict[str, str] = {"limit": str(limit)}
        if trigger_event_id is not None:
            params["triggerEventId"] = trigger_event_id
        if from_ is not None:
            params["from"] = from_
        if status is not None:
            params["status"] = self._status_filter(status)
        if cursor is not None:
            params["cursor"] = cursor
        try:
            answer = await self._request(
                "GET", "v1/automations/runs", endpoint="runs_list", policy="run_read", params=params
            )
        except ApiError as exc:
            # A 10.x server knows live-not-started runs only as "queued".
            if not (
                self._auto
                and self._shape == "9.3"
                and params.get("status") == "pending"
                and exc.status == 400
                and exc.param == "status"
            ):
                raise
            self._switch_to_10("status=pending refused with 400 INVALID_REQUEST")
            params["status"] = "queued"
            answer = await self._request(
                "GET", "v1/automations/runs", endpoint="runs_list", policy="run_read", params=params
            )
        try:
            runs = tuple(_run_info(row) for row in _rows(answer.body))
        except _Unreadable as exc:
            raise self._unreadable("runs_list", answer, exc) from None
        pagination = answer.body.get("pagination")
        if not isinstance(pagination, dict):
            return RunPage(runs, None, False)
        next_cursor = _opt_str(pagination.get("cursor"))
        has_more = pagination.get("hasMore")
        more = has_more if isinstance(has_more, bool) else next_cursor is not None
        return RunPage(runs, next_cursor, more and next_cursor is not None)

    async def get_run(self, run_id: str, *, include_logs: bool = False) -> RunInfo:
        """One run by id (with its newest node logs when ``include_logs``).

        Unknown run: ``ApiError`` 404 ``AUTOMATION_RUN_NOT_FOUND``.
        """
        if self._shape == "9.3":
            params = {"automationRunId": run_id}
            if include_logs:
                params["include"] = "logs"
            try:
                answer = await self._request(
                    "GET",
                    "v1/automations/runs",
                    endpoint="run_detail",
                    policy="run_read",
                    params=params,
                )
            except ApiError as exc:
                refused = exc.status == 400 and exc.code == "INVALID_REQUEST"
                if not (self._auto and refused and exc.param in (None, "automationRunId")):
                    raise
                self._switch_to_10("?automationRunId= refused with 400 INVALID_REQUEST")
            else:
                try:
                    rows = _rows(answer.body)
                    if not rows:
                        raise ApiError(
                            status=404,
                            code="AUTOMATION_RUN_NOT_FOUND",
                            type="not_found",
                            message=f"Automation run '{run_id}' was not found (empty page).",
                            param="automationRunId",
                            request_id=answer.request_id,
                            body=answer.body,
                        )
                    return _run_info(rows[0], answer.body.get("logs"))
                except _Unreadable as exc:
                    raise self._unreadable("run_detail", answer, exc) from None
        answer = await self._request(
            "GET",
            f"v1/automations/runs/{encode_path_segment(run_id)}",
            endpoint="run_detail",
            policy="run_read",
            params={"include": "logs"} if include_logs else None,
        )
        try:
            return _run_info(answer.body)
        except _Unreadable as exc:
            raise self._unreadable("run_detail", answer, exc) from None

    async def cancel_run(self, run_id: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a live run: ``{automationRunId, status: "canceled", previousStatus}``.

        A run already at an end: ``ApiError`` 409 ``RUN_NOT_CANCELLABLE``. Never
        retried by the official SDK; callers decide.
        """
        if self._shape == "9.3":
            body: dict[str, Any] = {"automationRunId": run_id, "status": "canceled"}
            if reason is not None:
                body["reason"] = reason
            try:
                answer = await self._request(
                    "PATCH",
                    "v1/automations/runs",
                    endpoint="run_cancel",
                    policy="run_read",
                    json_body=body,
                )
            except ApiError as exc:
                if not (self._auto and exc.code in _NO_SUCH_ROUTE):
                    raise
                self._switch_to_10(f"PATCH /runs answered {exc.status} {exc.code}")
            else:
                return self._object("run_cancel", answer)
        answer = await self._request(
            "POST",
            f"v1/automations/runs/{encode_path_segment(run_id)}/cancel",
            endpoint="run_cancel",
            policy="run_read",
            json_body={"reason": reason} if reason is not None else {},
        )
        return self._object("run_cancel", answer)

    # -- triggers ------------------------------------------------------------------------

    async def check_ready(self, trigger_event_id: str) -> dict[str, Any]:
        """Brew's pre-flight check of a trigger, without firing.

        9.3: the ``GET …/fire`` envelope, with a ``ready`` key added (true when the
        trigger loads and has at least one published automation, as 10.x's readiness
        says); 10.x: the ``…/readiness`` body (``ready``, ``blockers``, …).
        """
        segment = encode_path_segment(trigger_event_id)
        if self._shape == "9.3":
            try:
                answer = await self._request(
                    "GET",
                    f"v1/automations/triggers/{segment}/fire",
                    endpoint="trigger_ready",
                    policy="trigger_read",
                )
            except ApiError as exc:
                if not (self._auto and exc.code in _NO_SUCH_ROUTE):
                    raise
                self._switch_to_10(f"GET …/fire answered {exc.status} {exc.code}")
            else:
                body = self._object("trigger_ready", answer)
                details = body.get("details")
                counts = details.get("counts") if isinstance(details, dict) else None
                published = counts.get("automations") if isinstance(counts, dict) else None
                body.setdefault(
                    "ready",
                    body.get("success") is True and isinstance(published, int) and published > 0,
                )
                return body
        answer = await self._request(
            "GET",
            f"v1/automations/triggers/{segment}/readiness",
            endpoint="trigger_ready",
            policy="trigger_read",
        )
        return self._object("trigger_ready", answer)

    async def get_trigger(self, trigger_event_id: str) -> dict[str, Any]:
        """A trigger's row (title, provider, payloadSchema, …); 404 when unknown."""
        if self._shape == "10":
            answer = await self._request(
                "GET",
                f"v1/automations/triggers/{encode_path_segment(trigger_event_id)}",
                endpoint="trigger_detail",
                policy="trigger_read",
            )
            return self._object("trigger_detail", answer)
        answer = await self._request(
            "GET",
            "v1/automations/triggers",
            endpoint="trigger_detail",
            policy="trigger_read",
            params={"triggerEventId": trigger_event_id},
        )
        body = answer.body
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise self._unreadable("trigger_detail", answer, _Unreadable("no trigger row"))
        return dict(rows[0])

    def _object(self, endpoint: str, answer: _Answer) -> dict[str, Any]:
        if not isinstance(answer.body, dict):
            raise self._unreadable(endpoint, answer, _Unreadable("the body is not an object"))
        return dict(answer.body)
