"""The Boring Marketing target: fire a pipeline for a brand, classify the answers, follow
runs, cancel stuck ones.

What the dispatcher and the poller need of Boring Marketing: the wire format is
``wire.py``, the HTTP client ``client.py``, the reading of runs ``poll.py``.

A fire is ``TRIGGERED`` (202, a new run) or ``ADOPTED``: a 409 with ``X-Running-Run-Id``
says the brand already has a run in progress, and the document says to follow that run
instead of starting one. The document also says re-running is idempotent ("Pipeline
data is append-only and idempotent"), so what got no answer is fired again: a fire not
sent (:class:`TransportError`), one sent with no answer (:class:`UnknownOutcome`: if it
did start a run, the next fire is a 409 naming it, and that run is adopted), 408, 429,
5xx, and a 409 without the header. 401/403 open the auth gate; so does a 404 when the
brand is the target's configured ``brand_id`` (every event would get it, an answer about
the setup: typed :class:`AuthError` ``BRAND_NOT_FOUND``). A 404 for a brand an event's
payload named, and every other refusal, is dead-lettered now; so is a delivery naming no
brand or no pipeline endpoint (refused before anything is sent: :data:`NOT_SENT`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

from brew_bridge.config.targets import BoringMarketingConfig
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import ApiError, AuthError, TargetError, TransportError
from brew_bridge.events import FireAccepted, RunRead
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import DeliveryRow, RunRecord
from brew_bridge.targets.boring_marketing.client import BoringMarketingClient
from brew_bridge.targets.boring_marketing.poll import BoringRuns
from brew_bridge.targets.boring_marketing.pollplan import PollSettings
from brew_bridge.targets.boring_marketing.wire import (
    BRAND_KEY,
    brand_of,
    fire_body,
    pipeline_problem,
)
from brew_bridge.typing import ReadSlots

__all__ = [
    "BRAND_NOT_FOUND",
    "NOT_SENT",
    "RETRYABLE_STATUSES",
    "BoringMarketingTarget",
    "classify",
]

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every 5xx
# The status of a fire refused here, before anything was sent (no brand, no pipeline).
NOT_SENT = 0
# How a 404 to a fire for the configured brand reads once it opened the auth gate.
BRAND_NOT_FOUND = "BRAND_NOT_FOUND"


def _refused(code: str, message: str) -> ApiError:
    return ApiError(status=NOT_SENT, code=code, type="invalid_request", message=message)


def classify(outcome: BaseException) -> Disposition:
    """Sort the outcome of one fire into what to do about it (see the module).

    Exceptions that are not ours (a bug) are retried, bounded by attempts and age, as
    Brew's are; a bare :class:`TargetError` has no status to judge and is rejected.
    """
    if isinstance(outcome, AuthError):
        return Disposition.AUTH
    if isinstance(outcome, ApiError):
        if outcome.status in RETRYABLE_STATUSES or outcome.status >= 500:
            return Disposition.RETRY
        return Disposition.REJECT
    if isinstance(outcome, TransportError):  # UnknownOutcome too: firing again is safe
        return Disposition.RETRY
    if isinstance(outcome, TargetError) or not isinstance(outcome, Exception):
        return Disposition.REJECT
    return Disposition.RETRY


class BoringMarketingTarget:
    """Boring Marketing as a :class:`~brew_bridge.typing.Target`, named ``name`` in the config."""

    title = "Boring Marketing"

    def __init__(
        self,
        name: str,
        client: BoringMarketingClient,
        config: BoringMarketingConfig,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.max_refires = config.max_stuck_refires
        self._client = client
        self._config = config
        self._runs = BoringRuns(
            client,
            target=name,
            settings=PollSettings(
                pipeline_interval=config.pipeline_poll_interval_seconds,
                stage_interval=config.stage_poll_interval_seconds,
            ),
            stuck_after=config.stuck_after_seconds,
            default_brand=config.brand_id,
            metrics=metrics,
            brand_label=config.stage_brand_label,
        )

    def classify(self, outcome: BaseException, delivery: DeliveryRow) -> Disposition:
        return classify(outcome)

    def auth_hint(self, status: int, code: str) -> str:
        at = f"targets.{self.name}"
        key = f"{self._config.api_key_env} or {at}.api_key_file"
        if code == "API_KEY_MISSING":
            return f"Set the Boring Marketing API key in {key} (a file holding the key)."
        if code == BRAND_NOT_FOUND:
            return (
                f"Boring Marketing knows no brand {at}.brand_id ({self._config.brand_id}) for "
                f"this API key: fix {at}.brand_id, or put a key of the account owning the "
                f"brand in {key}."
            )
        return (
            "Boring Marketing rejected the API key (wrong, revoked or expired): put a valid key "
            f"(bm_…) in {key}; firing resumes by itself once it works."
        )

    async def fire(self, delivery: DeliveryRow) -> FireAccepted:
        problem = pipeline_problem(delivery.action)
        if problem is not None:
            raise _refused("UNKNOWN_PIPELINE", f"not sent: {problem}")
        brand = brand_of(delivery.payload, self._config.brand_id)
        if brand is None:
            raise _refused(
                "BRAND_ID_REQUIRED",
                f"not sent: the payload names no brand ({BRAND_KEY} must be a non-empty "
                f"string) and targets.{self.name}.brand_id is not set",
            )
        try:
            fired = await self._client.fire(delivery.action, brand, fire_body(delivery.payload))
        except ApiError as exc:
            if exc.status == 404 and delivery.payload.get(BRAND_KEY) is None:
                # The configured brand: every event would get it, an answer about the setup.
                fields = {f.name: getattr(exc, f.name) for f in dataclasses.fields(exc)}
                raise AuthError(**(fields | {"code": BRAND_NOT_FOUND})) from exc
            raise
        return FireAccepted(
            code="ADOPTED" if fired.adopted else "TRIGGERED",
            instance_id=None,
            run_ids=(fired.run_id,),
            request_id=fired.request_id,
            ref=brand,
        )

    def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        return self._runs.poll(runs, now, reads)

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        return await self._runs.read_run(run, reads)

    async def find_runs(
        self, delivery: DeliveryRow, since: float, until: float
    ) -> Sequence[str] | None:
        """Cannot tell: the API keeps no idempotency keys (the outbox stops duplicates,
        and a second fire while the first run is live is a 409 naming it)."""
        return None

    async def cancel(self, run: RunRecord, reason: str) -> None:
        """Mark the run failed at Boring Marketing. A run at its end (the API's 400) is
        a 409 ``RUN_NOT_CANCELLABLE`` here, as the poller expects; unknown: 404."""
        brand = self._runs.brand(run)
        if brand is None:
            raise _refused("BRAND_ID_REQUIRED", f"run {run.run_id} has no brand to cancel it at")
        try:
            await self._client.cancel_run(brand, run.run_id)
        except ApiError as exc:
            if exc.status != 400 or isinstance(exc, AuthError):
                raise
            raise dataclasses.replace(exc, status=409, code="RUN_NOT_CANCELLABLE") from exc
