"""The Brew API client: fire triggers, read and cancel runs, read triggers.

:class:`BrewClient` receives one pooled ``httpx.AsyncClient`` (:func:`build_http_client`)
and makes exactly one attempt per call: retries are the caller's decision
(``retry.next_delay``), because the dispatcher keeps them in the outbox, not in memory.
Before each request it waits for the rate budget of the endpoint's policy (that wait is
never an attempt) and after each answer it feeds the budget Brew's ``X-RateLimit-*``.

Every outcome is typed at this boundary (``errors.py``):

* a non-2xx answer becomes :class:`AuthError`, :class:`RateLimited` or
  :class:`ApiError` (:func:`~brew_bridge.targets.brew.wire.error_from_response`);
  an answer about the bridge's setup rather than the request (:data:`CONFIG_REFUSALS`:
  ``400 BRAND_ID_REQUIRED``, ``404 BRAND_NOT_FOUND``, ...) is an :class:`AuthError`
  whatever its status, because like a 401/403 every request would get it until an
  operator fixes the key or ``brew.brand_id``: it opens the auth gate, and nothing is
  dead-lettered or failed for it;
* no answer: :class:`TransportError` when the request was never sent (connect
  failure), :class:`UnknownOutcome` when it was (timeout, reset): Brew may have
  acted, and a fire is resolved by firing again with the same Idempotency-Key.

It speaks both API generations (brew-api.md §11; ``wire.py`` reads their bodies). With
``api_shape="auto"`` it starts with 9.3 and switches for good to 10.x the first time the
server shows it speaks 10.x (a bare fire body, ``?automationRunId=`` refused with
``400 INVALID_REQUEST``, ``status=pending`` refused, the 9.3 cancel or ready route
refused as unknown).

The API key comes from a callable, read for every request, so a rotated key (file or
environment) is picked up without a restart. It is never logged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx
import structlog

from brew_bridge.config import BrewConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import (
    ApiError,
    AuthError,
)
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.brew.wire import (
    FireResult,
    RunInfo,
    RunPage,
    encode_path_segment,
    error_from_response,
    fire_result,
    is_bare_fire_body,
    json_object,
    listed_run,
    normalise_status,
    readiness_from_fire_check,
    run_info,
    run_page,
    trigger_row,
)
from brew_bridge.targets.http import USER_AGENT, Answer, TargetHttp, usable_key
from brew_bridge.targets.http import build_http_client as build_target_http_client

# The result types are re-exported: callers of the client name them from here.
__all__ = [
    "CONFIG_REFUSALS",
    "USER_AGENT",
    "BrewClient",
    "FireResult",
    "RunInfo",
    "RunPage",
    "build_http_client",
]

log = structlog.get_logger(__name__)

_MAX_KEY_LENGTH = 100
# Codes a server answers for a route it does not have (the other API generation's).
_NO_SUCH_ROUTE = frozenset({"NOT_FOUND", "METHOD_NOT_ALLOWED"})

# Answers about the bridge's setup, not about one request (brew-api.md §1.2, §8): every
# request gets them until the key or ``brew.brand_id`` is fixed. Typed as AuthError
# whatever their status (the 403s among them already are).
CONFIG_REFUSALS: frozenset[str] = frozenset(
    {
        "BRAND_ID_REQUIRED",  # 400: an organization key, and no X-Brand-Id sent
        "BRAND_NOT_FOUND",  # 404: X-Brand-Id names no brand of the key's organization
        "BRAND_SCOPE_MISMATCH",  # 403: a brand key, and X-Brand-Id names another brand
        "ORG_SCOPE_REQUIRED",  # 403 (after 9.3): the call needs an organization key
    }
)

Shape = Literal["9.3", "10"]
T = TypeVar("T")


def build_http_client(config: BrewConfig) -> httpx.AsyncClient:
    """The one pooled HTTP client for Brew: base URL, timeouts and pool from config."""
    return build_target_http_client(
        config.base_url,
        timeout=config.timeout_seconds,
        connect_timeout=config.connect_timeout_seconds,
        max_connections=config.max_connections,
    )


def _config_refusal(error: ApiError) -> ApiError:
    """``error`` as an :class:`AuthError` when it is one of :data:`CONFIG_REFUSALS`."""
    if isinstance(error, AuthError) or error.code not in CONFIG_REFUSALS:
        return error
    return AuthError(**{f.name: getattr(error, f.name) for f in dataclasses.fields(error)})


def _error_of(status: int, body: Any, headers: httpx.Headers) -> ApiError:
    return _config_refusal(error_from_response(status, body, headers))


# -- the client --------------------------------------------------------------------------


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
        self._transport = TargetHttp(
            http,
            target="brew",
            budgets=budgets,
            metrics=metrics,
            attempt_timeout=attempt_timeout,
            clock=clock,
        )
        self._api_key = api_key
        self._brand_id = brand_id
        self._auto = api_shape == "auto"
        self._shape: Shape = "10" if api_shape == "10" else "9.3"

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
        key = usable_key(
            self._api_key,
            "Brew",
            "Set BREW_API_KEY or point brew.api_key_file at a file holding the key.",
        )
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
    ) -> Answer:
        """Send once (after the budget), return a 2xx answer or raise a typed error."""
        return await self._transport.request(
            method,
            path,
            endpoint=endpoint,
            policy=policy,
            headers=self._headers(body=json_body is not None, idempotency_key=idempotency_key),
            error_of=_error_of,
            params=params,
            json_body=json_body,
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
        if is_bare_fire_body(answer.body):
            self._switch_to_10("fire answered the bare 10.x body")
        return answer.read(lambda body: fire_result(answer.status, body, answer.request_id))

    # -- runs ----------------------------------------------------------------------------

    def _status_filter(self, status: str) -> str:
        wire = normalise_status(status)
        return "queued" if self._shape == "10" and wire == "pending" else wire

    async def list_runs(
        self,
        *,
        trigger_event_id: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        recipient_email: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs, newest first (``from_``, ``to``: ISO times; ``status`` in
        either generation's words)."""
        params: dict[str, str] = {"limit": str(limit)}
        if trigger_event_id is not None:
            params["triggerEventId"] = trigger_event_id
        if recipient_email is not None:
            params["recipientEmail"] = recipient_email
        if from_ is not None:
            params["from"] = from_
        if to is not None:
            params["to"] = to
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
        return answer.read(run_page)

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
                return answer.read(lambda body: listed_run(body, run_id, answer.request_id))
        answer = await self._request(
            "GET",
            f"v1/automations/runs/{encode_path_segment(run_id)}",
            endpoint="run_detail",
            policy="run_read",
            params={"include": "logs"} if include_logs else None,
        )
        return answer.read(run_info)

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
                return answer.read(json_object)
        answer = await self._request(
            "POST",
            f"v1/automations/runs/{encode_path_segment(run_id)}/cancel",
            endpoint="run_cancel",
            policy="run_read",
            json_body={"reason": reason} if reason is not None else {},
        )
        return answer.read(json_object)

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
                return readiness_from_fire_check(answer.read(json_object))
        answer = await self._request(
            "GET",
            f"v1/automations/triggers/{segment}/readiness",
            endpoint="trigger_ready",
            policy="trigger_read",
        )
        return answer.read(json_object)

    async def get_trigger(self, trigger_event_id: str) -> dict[str, Any]:
        """A trigger's row (title, provider, payloadSchema, …); 404 when unknown."""
        if self._shape == "10":
            answer = await self._request(
                "GET",
                f"v1/automations/triggers/{encode_path_segment(trigger_event_id)}",
                endpoint="trigger_detail",
                policy="trigger_read",
            )
            return answer.read(json_object)
        answer = await self._request(
            "GET",
            "v1/automations/triggers",
            endpoint="trigger_detail",
            policy="trigger_read",
            params={"triggerEventId": trigger_event_id},
        )
        return answer.read(trigger_row)
