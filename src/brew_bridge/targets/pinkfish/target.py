"""The Pinkfish target: fire a workflow trigger, classify Pinkfish's answers, follow runs.

What the dispatcher and the poller need of Pinkfish: the wire format is ``wire.py``, the
HTTP client ``client.py``, the reading of runs ``poll.py``.

Pinkfish documents no idempotency key, so a fire that was sent and got no answer (a
timeout, a reset: :class:`UnknownOutcome`) cannot be resolved by firing again — that
could run the workflow twice. It is dead-lettered ``outcome_unknown`` (the operator
decides), unless its route says ``on_unknown_outcome: fire_again`` (a workflow that is
harmless to run twice). Retried: a fire not sent (:class:`TransportError`), 408, 429
and 5xx (Pinkfish did not start anything). 401/403 open the auth gate. Every other
refusal (404: no such trigger, 400: a body it refuses) is dead-lettered now.

Pinkfish has no cancel route and no way to list runs: :meth:`PinkfishTarget.cancel`
raises, :meth:`PinkfishTarget.find_runs` cannot tell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence

from brew_bridge.core.retry import Disposition
from brew_bridge.errors import (
    ApiError,
    AuthError,
    TargetError,
    TransportError,
    UnknownOutcome,
    Unsupported,
)
from brew_bridge.events import FireAccepted, RunRead
from brew_bridge.store import DeliveryRow, RunRecord
from brew_bridge.targets.pinkfish.client import PinkfishClient
from brew_bridge.targets.pinkfish.poll import Pace, PinkfishRuns
from brew_bridge.typing import ReadSlots

__all__ = ["RETRYABLE_STATUSES", "PinkfishTarget", "classify"]

RETRYABLE_STATUSES = frozenset({408, 429})  # and every 5xx


def classify(outcome: BaseException, *, fire_again: bool = False) -> Disposition:
    """Sort the outcome of one fire into what to do about it (see the module).

    ``fire_again``: the route allows a fire whose outcome is unknown to be fired again.
    Exceptions that are not ours (a bug) are retried, bounded by attempts and age, as
    Brew's are; a bare :class:`TargetError` has no status to judge and is rejected.
    """
    if isinstance(outcome, AuthError):
        return Disposition.AUTH
    if isinstance(outcome, ApiError):
        if outcome.status in RETRYABLE_STATUSES or outcome.status >= 500:
            return Disposition.RETRY
        return Disposition.REJECT
    if isinstance(outcome, UnknownOutcome):
        return Disposition.RETRY if fire_again else Disposition.UNKNOWN_OUTCOME
    if isinstance(outcome, TransportError):
        return Disposition.RETRY
    if isinstance(outcome, TargetError) or not isinstance(outcome, Exception):
        return Disposition.REJECT
    return Disposition.RETRY


class PinkfishTarget:
    """Pinkfish as a :class:`~brew_bridge.typing.Target`, named ``name`` in the config.

    ``fire_again``: the routes whose unknown outcomes are fired again; ``key_env``: the
    environment variable the key is read from, for the auth hint.
    """

    title = "Pinkfish"
    max_refires = 0

    def __init__(
        self,
        name: str,
        client: PinkfishClient,
        *,
        pace: Pace,
        fetch_results: bool,
        fire_again: Collection[str] = (),
        key_env: str = "PINKFISH_API_KEY",
    ) -> None:
        self.name = name
        self._client = client
        self._runs = PinkfishRuns(client, pace, fetch_results=fetch_results)
        self._fire_again = frozenset(fire_again)
        self._key_env = key_env

    def classify(self, outcome: BaseException, delivery: DeliveryRow) -> Disposition:
        return classify(outcome, fire_again=delivery.route in self._fire_again)

    def auth_hint(self, status: int, code: str) -> str:
        where = (
            f"{self._key_env} (targets.{self.name}.api_key_env) or the file "
            f"targets.{self.name}.api_key_file names"
        )
        if code == "API_KEY_MISSING":
            return f"Set the Pinkfish API key in {where}."
        return (
            f"Pinkfish refused the API key (wrong, revoked or expired): put a valid key in "
            f"{where}; firing and polling resume by themselves once it works."
        )

    async def fire(self, delivery: DeliveryRow) -> FireAccepted:
        fired = await self._client.trigger(delivery.action, delivery.payload)
        return FireAccepted(
            code="TRIGGERED",
            instance_id=None,
            run_ids=(fired.run_id,),
            request_id=fired.request_id,
            ref=fired.automation_id,
        )

    def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        return self._runs.poll(runs, now, reads)

    async def read_run(self, run: RunRecord, reads: ReadSlots, *, logs: bool) -> RunRead | None:
        """One status read (the steps are its logs, whatever ``logs`` says), and the
        results when it ended; None when Pinkfish does not know the run."""
        return await self._runs.read(run, reads)

    async def find_runs(
        self, delivery: DeliveryRow, since: float, until: float
    ) -> Sequence[str] | None:
        """None: Pinkfish cannot list runs, so which ones a fire started cannot be told."""
        return None

    async def cancel(self, run: RunRecord, reason: str) -> None:
        raise Unsupported("Pinkfish has no cancel endpoint: the run goes on at Pinkfish")
