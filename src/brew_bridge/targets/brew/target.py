"""The Brew target: fire a trigger, classify Brew's answers, follow runs, cancel them.

What the dispatcher and the poller need of Brew and nothing else: the wire format is
``wire.py``, the HTTP client ``client.py``, the reading of runs ``poll.py``.

What is retried (matching the official SDK, see brew-sdk-behaviour.md §5):

* no answer: connect errors, timeouts, resets (:class:`TransportError`, including
  :class:`UnknownOutcome` — a fire whose outcome is unknown is resolved by firing
  again with the same Idempotency-Key, which Brew answers ``idempotent_replay``);
* HTTP 408, 429, 500, 502, 503, 504;
* ``409 IDEMPOTENCY_IN_PROGRESS``: the first request with this key is still running,
  asking again later gets its result;
* ``422 NO_PUBLISHED_AUTOMATION``: waited on (``WAIT_FOR_PUBLISH``), because someone
  may be publishing the automation right now.

Never retried: 400, 401, 403, 404, 409 (other codes) and every other status. 401/403
are not dead-lettered either: they open the auth gate, and so do the answers about the
bridge's setup rather than one event (``400 BRAND_ID_REQUIRED``, ``404 BRAND_NOT_FOUND``,
... :data:`~brew_bridge.targets.brew.client.CONFIG_REFUSALS`, which the client types as
:class:`AuthError`): every event would get them until an operator fixes the key or
``brew.brand_id``, so they pause firing and polling instead of dead-lettering every event.
:func:`auth_fix_hint` says what to fix for each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from brew_bridge.core.retry import Disposition
from brew_bridge.errors import ApiError, AuthError, TargetError, TransportError
from brew_bridge.events import FireAccepted, RunRead
from brew_bridge.store import DeliveryRow, RunRecord
from brew_bridge.targets.brew.client import BrewClient
from brew_bridge.targets.brew.poll import BrewRuns
from brew_bridge.targets.brew.pollplan import PollSettings
from brew_bridge.timefmt import iso_utc
from brew_bridge.typing import Clock, ReadSlots

__all__ = ["RETRYABLE_STATUSES", "BrewTarget", "auth_fix_hint", "classify"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_IDEMPOTENCY_IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"
_NO_PUBLISHED_AUTOMATION = "NO_PUBLISHED_AUTOMATION"
# Pages of one recipient's runs of one trigger read to find a fire's runs: more than
# this in the window and the lookup cannot tell which are ours.
_LOOKUP_PAGES = 5


def classify(outcome: BaseException) -> Disposition:
    """Sort an outcome of one call into what to do about it.

    :class:`AuthError` (a 401/403, or an answer about the setup the client typed as
    one) is ``AUTH``: the gate holds the rows. Exceptions that are not Brew errors (a
    bug, an unexpected library error) are retried: bounded by attempts and age, that
    loses nothing, while rejecting would dead-letter good events because of our own
    fault.
    """
    if isinstance(outcome, AuthError):
        return Disposition.AUTH
    if isinstance(outcome, ApiError):
        if outcome.status in RETRYABLE_STATUSES:
            return Disposition.RETRY
        if outcome.status == 409 and outcome.code == _IDEMPOTENCY_IN_PROGRESS:
            return Disposition.RETRY
        if outcome.status == 422 and outcome.code == _NO_PUBLISHED_AUTOMATION:
            return Disposition.WAIT_FOR_PUBLISH
        return Disposition.REJECT
    if isinstance(outcome, TransportError):
        return Disposition.RETRY
    if isinstance(outcome, TargetError) or not isinstance(outcome, Exception):
        # A bare TargetError has no status to judge; BaseException (cancellation,
        # KeyboardInterrupt) must never be turned into a retry.
        return Disposition.REJECT
    return Disposition.RETRY


def auth_fix_hint(status: int, code: str) -> str:
    """What an operator should do about an answer that opened the auth gate, in one
    sentence: a 401/403, or an answer about the setup (``BRAND_*``)."""
    if code == "API_KEY_MISSING":
        return (
            "Set the Brew API key in BREW_API_KEY or point brew.api_key_file at a file holding it."
        )
    if code == "BRAND_ID_REQUIRED":
        return (
            "The API key is organization-scoped, so Brew must be told the brand: set "
            "brew.brand_id (sent as X-Brand-Id) to the id of the brand to fire for."
        )
    if code == "BRAND_NOT_FOUND":
        return (
            "Brew knows no brand brew.brand_id (X-Brand-Id) for this key: the brand id is wrong "
            "or the key belongs to another brand's organization; fix brew.brand_id or use a key "
            "of that brand's organization."
        )
    if code == "BRAND_SCOPE_MISMATCH":
        return (
            "The key belongs to another brand than brew.brand_id (X-Brand-Id): fix brew.brand_id "
            "(or leave it unset for a brand key) or use a key of that brand."
        )
    if code == "ORG_SCOPE_REQUIRED":
        return (
            "Brew wants an organization-scoped API key here: put one in BREW_API_KEY or "
            "brew.api_key_file and set brew.brand_id to the brand to fire for."
        )
    if code == "INSUFFICIENT_PERMISSIONS" or status == 403:
        return (
            "The API key lacks the 'automations' permission: create a key with that scope and put "
            "it in BREW_API_KEY or brew.api_key_file."
        )
    return (
        "Brew rejected the API key (wrong, revoked or expired): put a valid key in BREW_API_KEY "
        "or brew.api_key_file; firing resumes by itself once it works."
    )


class BrewTarget:
    """Brew as a :class:`~brew_bridge.typing.Target`.

    ``not_found_confirm_seconds``: how long after a run read answered ``404
    AUTOMATION_RUN_NOT_FOUND`` the read that confirms it is made (default: five poll
    intervals); see :class:`~brew_bridge.targets.brew.poll.BrewRuns`.
    """

    name = "brew"
    title = "Brew"
    max_refires = 0

    def __init__(
        self,
        client: BrewClient,
        *,
        poll: PollSettings,
        fetch_logs: bool,
        clock: Clock,
        not_found_confirm_seconds: float | None = None,
    ) -> None:
        self._client = client
        self._runs = BrewRuns(
            client,
            poll,
            fetch_logs=fetch_logs,
            clock=clock,
            not_found_confirm_seconds=not_found_confirm_seconds,
        )

    def classify(self, outcome: BaseException, delivery: DeliveryRow) -> Disposition:
        return classify(outcome)

    def auth_hint(self, status: int, code: str) -> str:
        return auth_fix_hint(status, code)

    async def fire(self, delivery: DeliveryRow) -> FireAccepted:
        fired = await self._client.fire(delivery.action, delivery.payload, delivery.idempotency_key)
        return FireAccepted(
            code=fired.code,
            instance_id=fired.trigger_instance_id,
            run_ids=fired.run_ids,
            request_id=fired.request_id,
        )

    def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        return self._runs.poll(runs, now, reads)

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        return await self._runs.read_run(run, reads, logs=logs)

    async def find_runs(
        self, delivery: DeliveryRow, since: float, until: float
    ) -> tuple[str, ...] | None:
        """The runs Brew started for ``delivery`` between ``since`` and ``until``: its
        trigger's runs for the payload's ``email`` in that window (every page, newest
        first, up to ``_LOOKUP_PAGES``). None when it cannot tell: no email to look by,
        or more runs than the pages hold."""
        email = delivery.payload.get("email")
        if not isinstance(email, str) or not email:
            return None
        found: list[str] = []
        cursor: str | None = None
        for _ in range(_LOOKUP_PAGES):
            page = await self._client.list_runs(
                trigger_event_id=delivery.action,
                recipient_email=email,
                from_=iso_utc(since),
                to=iso_utc(until),
                cursor=cursor,
            )
            # An older server ignores recipientEmail: check each row's address too.
            found.extend(
                run.run_id
                for run in page.runs
                if run.recipient_email is None or run.recipient_email.lower() == email.lower()
            )
            if not page.has_more:
                return tuple(found)
            cursor = page.cursor
        return None

    async def cancel(self, run: RunRecord, reason: str) -> None:
        await self._client.cancel_run(run.run_id, reason=f"brew-bridge: {reason}")
