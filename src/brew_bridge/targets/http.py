"""One HTTP attempt, the same for every target: budget, send once, type the outcome.

Every target's client makes exactly one attempt per call (retries are the dispatcher's,
kept in the outbox). :meth:`TargetHttp.request` waits for the rate budget of the call's
policy first (that wait is never an attempt), sends, and types what happened:

* not sent (connect failure, pool timeout, a bad URL): :class:`TransportError` — safe
  to send again;
* sent and no answer (a timeout, a reset) or an answer that cannot be read:
  :class:`UnknownOutcome` — the target may have acted on it;
* a non-2xx answer: the target's own :class:`ApiError` (``error_of`` reads its body);
* a 2xx answer: an :class:`Answer` with the JSON body (None when the body is empty).

It feeds the budget the answer's ``X-RateLimit-*`` headers and counts
``brew_bridge_http_requests_total`` by target, endpoint and status. Error messages name
the endpoint label, never the URL: some targets carry the API key in their paths.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import structlog

from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import ApiError, AuthError, TransportError, UnknownOutcome
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.connections import ConnectionShards
from brew_bridge.version import __version__

__all__ = [
    "USER_AGENT",
    "Answer",
    "ErrorOf",
    "TargetHttp",
    "Unreadable",
    "build_http_client",
    "usable_key",
]

log = structlog.get_logger(__name__)

USER_AGENT = f"brew-bridge/{__version__}"

T = TypeVar("T")
# How a target reads a non-2xx answer: (status, JSON body or None, headers) -> its error.
ErrorOf = Callable[[int, Any, httpx.Headers], ApiError]

_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


class Unreadable(ValueError):
    """A 2xx body that does not have the shape the target documents."""


def usable_key(api_key: Callable[[], str], title: str, suggestion: str | None = None) -> str:
    """The key ``api_key`` gives now, stripped. One it cannot give (the file unreadable,
    empty) is ``AuthError API_KEY_MISSING``: nothing is sent, and the auth gate pauses
    the target as a refused key would, until a key is back."""

    def missing(why: str) -> AuthError:
        return AuthError(
            status=401,
            code="API_KEY_MISSING",
            type="authentication_error",
            message=f"No usable {title} API key ({why}).",
            suggestion=suggestion,
        )

    try:
        key = api_key()
    except Exception as exc:
        raise missing(f"reading the API key failed: {type(exc).__name__}") from exc
    key = key.strip() if isinstance(key, str) else ""
    if not key:
        raise missing("the API key is empty")
    return key


def build_http_client(
    base_url: str, *, timeout: float, connect_timeout: float, max_connections: int
) -> httpx.AsyncClient:
    """The one pooled HTTP client of a target.

    ``timeout`` bounds reads, writes and the wait for a pooled connection;
    :class:`TargetHttp` also bounds each whole attempt, body included, by it. The pool is
    :class:`ConnectionShards` of ``max_connections``.
    """
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        transport=ConnectionShards.for_url(base_url, max_connections),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


@dataclass(frozen=True)
class Answer:
    """A 2xx answer: its JSON body (None when empty) and headers."""

    endpoint: str
    status: int
    body: Any
    headers: httpx.Headers
    request_id: str | None

    def read(self, parse: Callable[[Any], T]) -> T:
        """``parse(body)``; a body it cannot read (:class:`Unreadable`) becomes
        :class:`UnknownOutcome`: the target answered, and we cannot tell what it did."""
        try:
            return parse(self.body)
        except Unreadable as exc:
            raise UnknownOutcome(
                f"{self.endpoint}: answered {self.status} with a body we cannot read ({exc}) "
                f"[{self.request_id}]"
            ) from None


class TargetHttp:
    """One attempt per :meth:`request`, for the target named ``target`` (a metric label).

    ``budgets`` paces requests per policy (``fire``, ``run_read``, ``trigger_read``);
    ``attempt_timeout`` bounds each attempt, body included (default: the HTTP client's
    read timeout).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        target: str,
        budgets: RateBudgets | None = None,
        metrics: Metrics | None = None,
        attempt_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self._target = target
        self._budgets = budgets
        self._metrics = metrics
        read_timeout = http.timeout.read
        self._attempt_timeout = (
            attempt_timeout
            if attempt_timeout is not None
            else (read_timeout if read_timeout is not None else 30.0)
        )
        self._clock = clock

    async def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        policy: str,
        headers: Mapping[str, str],
        error_of: ErrorOf,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send once (after the budget); return a 2xx answer or raise a typed error."""
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
        what = f"{method} {endpoint}"
        try:
            async with asyncio.timeout(self._attempt_timeout):
                response = await self.http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    headers=headers,
                    extensions={"trace": trace},
                )
        except _NOT_SENT as exc:
            self._no_answer(endpoint, policy, grant, started, sent=False)
            raise TransportError(f"{what}: not sent ({type(exc).__name__})") from exc
        except (httpx.TransportError, TimeoutError) as exc:
            was_sent = sent is not False
            self._no_answer(endpoint, policy, grant, started, sent=was_sent)
            failed = (
                "timed out"
                if isinstance(exc, TimeoutError | httpx.TimeoutException)
                else f"connection failed ({type(exc).__name__})"
            )
            if not was_sent:
                raise TransportError(f"{what}: {failed} before sending") from exc
            raise UnknownOutcome(
                f"{what}: {failed} after the request was sent; the target may have acted on it"
            ) from exc
        except httpx.HTTPError as exc:  # e.g. a body that fails to decode: it was answered
            self._no_answer(endpoint, policy, grant, started, sent=True)
            raise UnknownOutcome(f"{what}: unreadable answer ({type(exc).__name__})") from exc
        except BaseException:  # cancelled (or a bug): give the slot back before leaving
            self._no_answer(endpoint, policy, grant, started, sent=sent is not False)
            raise
        return self._answer(response, endpoint, policy, grant, started, error_of)

    def _no_answer(
        self, endpoint: str, policy: str, grant: int | None, started: float, *, sent: bool
    ) -> None:
        if self._budgets is not None:
            self._budgets.observe(policy, None, self._clock(), grant=grant, sent=sent)
        self._count(endpoint, "error", time.perf_counter() - started)

    def _count(self, endpoint: str, status: str, duration: float) -> None:
        if self._metrics is not None:
            labels = {"target": self._target, "endpoint": endpoint}
            self._metrics.http_requests.labels(**labels, status=status).inc()
            self._metrics.http_request_duration.labels(**labels).observe(duration)

    def _answer(
        self,
        response: httpx.Response,
        endpoint: str,
        policy: str,
        grant: int | None,
        started: float,
        error_of: ErrorOf,
    ) -> Answer:
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
        error = None if 200 <= status < 300 else error_of(status, body, response.headers)
        if self._budgets is not None:
            self._budgets.observe(
                policy,
                response.headers,
                self._clock(),
                status=status,
                retry_after=error.retry_after if error is not None else None,
                grant=grant,
            )
        self._count(endpoint, str(status), duration)
        log.debug(
            "target answered",
            target=self._target,
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
        return Answer(endpoint, status, body, response.headers, request_id)
