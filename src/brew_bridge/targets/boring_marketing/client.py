"""The Boring Marketing API client: fire a pipeline, read a brand's runs, cancel one.

One attempt per call over :class:`~brew_bridge.targets.http.TargetHttp` (which waits for
the rate budget, sends once and types what happened); retries are the dispatcher's.
Fires use the ``fire`` budget, run reads and cancels ``run_read``. The API key comes
from a callable read for every request (rotation without restart), goes in
``X-API-Key`` and is never logged; no error names a URL, only an endpoint label.

A fire answered ``409`` with ``X-Running-Run-Id`` is not an error here: the brand already
has a run in progress, and the document says to follow that run instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import ApiError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.boring_marketing.wire import (
    BmRun,
    accepted_run_id,
    error_of,
    run_of,
    running_run_id,
    runs_of,
    segment,
)
from brew_bridge.targets.http import Answer, TargetHttp, usable_key

__all__ = ["BoringMarketingClient", "Fired"]


@dataclass(frozen=True)
class Fired:
    """A fire the API took: the run it started, or (``adopted``) the run already in
    progress for the brand that it pointed to instead."""

    run_id: str
    adopted: bool
    request_id: str | None


class BoringMarketingClient:
    """One attempt per call against the API of seed 004 (see the module docstring).

    ``target`` names the target in metrics; ``attempt_timeout`` bounds each attempt,
    body included (default: the HTTP client's read timeout).
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
        self._transport = TargetHttp(
            http,
            target=target,
            budgets=budgets,
            metrics=metrics,
            attempt_timeout=attempt_timeout,
            clock=clock,
        )
        self._api_key = api_key

    def _headers(self, *, body: bool) -> dict[str, str]:
        key = usable_key(self._api_key, "Boring Marketing")
        headers = {"X-API-Key": key}
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        policy: str,
        json_body: Mapping[str, Any] | None = None,
    ) -> Answer:
        return await self._transport.request(
            method,
            path,
            endpoint=endpoint,
            policy=policy,
            headers=self._headers(body=json_body is not None),
            error_of=error_of,
            json_body=json_body,
        )

    async def fire(self, pipeline: str, brand_id: str, body: Mapping[str, Any]) -> Fired:
        """``POST /brands/{brand_id}/{pipeline}`` with ``body``, once."""
        try:
            answer = await self._request(
                "POST",
                f"brands/{segment(brand_id)}/{pipeline}",
                endpoint="fire",
                policy="fire",
                json_body=body,
            )
        except ApiError as exc:
            running = running_run_id(exc)
            if running is None:
                raise
            return Fired(running, adopted=True, request_id=exc.request_id)
        return Fired(answer.read(accepted_run_id), adopted=False, request_id=answer.request_id)

    async def get_run(self, brand_id: str, run_id: str) -> BmRun:
        """One run; an unknown run or brand is an ``ApiError`` 404."""
        answer = await self._request(
            "GET",
            f"brands/{segment(brand_id)}/runs/{segment(run_id)}",
            endpoint="run_detail",
            policy="run_read",
        )
        return answer.read(run_of)

    async def list_runs(self, brand_id: str) -> list[BmRun]:
        """Every run of the brand the list shows (one read, however many)."""
        answer = await self._request(
            "GET", f"brands/{segment(brand_id)}/runs", endpoint="runs_list", policy="run_read"
        )
        return answer.read(runs_of)

    async def cancel_run(self, brand_id: str, run_id: str) -> None:
        """Mark a live run failed. A run at its end: ``ApiError`` 400; unknown: 404."""
        await self._request(
            "POST",
            f"brands/{segment(brand_id)}/runs/{segment(run_id)}/cancel",
            endpoint="run_cancel",
            policy="run_read",
        )
