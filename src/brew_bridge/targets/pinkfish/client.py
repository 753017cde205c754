"""The Pinkfish API client: fire a trigger, read a run's status and its results.

One attempt per call through :class:`~brew_bridge.targets.http.TargetHttp` (the
dispatcher keeps retries in the outbox): the fire on the ``fire`` budget, the two reads
on ``run_read``. The API key comes from a callable read for every request (a rotated key
is picked up without a restart); the fire sends it in ``X-API-KEY``, the polling routes
in their path — the document says they always use the webhook-style URL.

A URL holding the key must never reach a log line or an error: the metrics and errors
name an endpoint label (``trigger``, ``run_status``, ``run_results``), never the URL;
an answer echoing the key has it scrubbed (:func:`~.wire.error_of`); and httpx's own
``HTTP Request: GET …`` log line (INFO, stdlib logging) is masked by a filter installed
on the ``httpx`` logger the first time a client is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import ApiError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.http import Answer, ErrorOf, TargetHttp, usable_key
from brew_bridge.targets.pinkfish.wire import (
    RunStatus,
    Triggered,
    error_of,
    mask_key_paths,
    results,
    run_status,
    triggered,
)

__all__ = ["MaskKeyInPaths", "PinkfishClient"]


class MaskKeyInPaths(logging.Filter):
    """A stdlib log filter: the API key of every polling URL in a record becomes ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/ext/webhook/" in message:
            record.msg, record.args = mask_key_paths(message), None
        return True


def _mask_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, MaskKeyInPaths) for f in logger.filters):
        logger.addFilter(MaskKeyInPaths())


def _segment(value: str) -> str:
    return quote(value, safe="")


class PinkfishClient:
    """One attempt per call against Pinkfish's trigger and polling routes.

    ``target`` is the target's name (the metrics' label); ``api_key`` is called for
    every request; ``attempt_timeout`` bounds each attempt, body included (default: the
    HTTP client's read timeout).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        target: str,
        api_key: Callable[[], str],
        budgets: RateBudgets | None = None,
        metrics: Metrics | None = None,
        attempt_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _mask_httpx_log()
        self._http = TargetHttp(
            http,
            target=target,
            budgets=budgets,
            metrics=metrics,
            attempt_timeout=attempt_timeout,
            clock=clock,
        )
        self._api_key = api_key

    def _key(self) -> str:
        return usable_key(self._api_key, "Pinkfish")

    async def trigger(self, trigger_id: str, payload: Mapping[str, Any]) -> Triggered:
        """Fire ``trigger_id`` with ``payload`` as its input, asynchronously."""
        key = self._key()
        answer = await self._http.request(
            "POST",
            f"ext/triggers/{_segment(trigger_id)}",
            endpoint="trigger",
            policy="fire",
            headers={"X-API-KEY": key, "x-api-wait": "false", "Content-Type": "application/json"},
            json_body=payload,
            error_of=_error_of(key),
        )
        return answer.read(lambda _body: triggered(answer.headers, answer.request_id))

    async def _read(self, automation_id: str, run_id: str, what: str) -> Answer:
        key = self._key()
        return await self._http.request(
            "GET",
            f"ext/webhook/{_segment(key)}/runs/{_segment(automation_id)}/{_segment(run_id)}/{what}",
            endpoint=f"run_{what}",
            policy="run_read",
            headers={},
            error_of=_error_of(key),
        )

    async def status(self, automation_id: str, run_id: str) -> RunStatus:
        """The run's status and its steps'; unknown run: ``ApiError`` 404."""
        return (await self._read(automation_id, run_id, "status")).read(run_status)

    async def results(self, automation_id: str, run_id: str) -> dict[str, Any]:
        """The run's results (``results[]``, ``designatedOutput``); unknown run: 404."""
        return (await self._read(automation_id, run_id, "results")).read(results)


def _error_of(key: str) -> ErrorOf:
    def read(status: int, body: Any, headers: httpx.Headers) -> ApiError:
        return error_of(status, body, headers, secret=key)

    return read
