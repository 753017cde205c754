"""Reading Boring Marketing runs for the poller: one list read per brand, stuck runs canceled.

Each cycle, :func:`~brew_bridge.targets.boring_marketing.pollplan.plan_poll` names the
brands with a due run; one ``GET /brands/{brand_id}/runs`` shows every run of the brand,
so it settles all of the brand's live runs at once (due or not). A due run the list does
not show is read by id; if that read answers 404 too, the run is recorded ``failed``:
two reads agree the API no longer knows it.

A live run that is stuck (:func:`~brew_bridge.targets.boring_marketing.stuck.stuck_reason`)
is canceled (``POST …/cancel``, through the poller's read slots like any read) and
reported ``canceled`` with ``refire``: the poller fires its event again, up to the
target's ``max_refires`` more runs. The runs canceled are remembered while they are
live in the outbox, so a cancel whose answer was lost is still recognised when the run
reads ``failed`` next cycle. A cancel answered 400 (the run ended meanwhile) leaves
the run to the next read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from functools import partial

import structlog

from brew_bridge.errors import ApiError, AuthError
from brew_bridge.events import RunRead, is_terminal
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import RunRecord
from brew_bridge.targets.boring_marketing.client import BoringMarketingClient
from brew_bridge.targets.boring_marketing.pollplan import PollSettings, plan_poll
from brew_bridge.targets.boring_marketing.stages import StageGauges
from brew_bridge.targets.boring_marketing.stuck import stuck_reason
from brew_bridge.targets.boring_marketing.wire import BmRun
from brew_bridge.typing import ReadSlots

__all__ = ["BoringRuns"]

log = structlog.get_logger(__name__)


class BoringRuns:
    """The poll side of the target (see the module): what was canceled as stuck, and
    the stage of every live run."""

    def __init__(
        self,
        client: BoringMarketingClient,
        *,
        target: str,
        settings: PollSettings,
        stuck_after: float,
        default_brand: str | None,
        metrics: Metrics | None,
        brand_label: bool,
    ) -> None:
        self._client = client
        self._target = target
        self._settings = settings
        self._stuck_after = stuck_after
        self._default_brand = default_brand
        self._metrics = metrics
        self._stages = StageGauges(metrics, target, brand_label=brand_label)
        self._canceled: dict[str, str] = {}  # run id -> why it was canceled as stuck

    def brand(self, run: RunRecord) -> str | None:
        return run.ref or self._default_brand

    async def poll(
        self, runs: Sequence[RunRecord], now: float, reads: ReadSlots
    ) -> AsyncIterator[Sequence[RunRead]]:
        live = {r.run_id for r in runs}
        self._stages.keep(live)
        for run_id in [i for i in self._canceled if i not in live]:
            del self._canceled[run_id]
        try:
            for read in plan_poll(runs, now, self._settings, self._default_brand):
                brand = read.brand_id
                try:
                    listed = await reads.read("list", partial(self._client.list_runs, brand))
                except ApiError as exc:
                    _unless_unknown(exc)
                    listed = []  # the brand is unknown: read the due runs by id
                ours = [run for run in listed if run.run_id in read.run_ids]
                suspects: list[BmRun] = []
                quiet: list[RunRead] = []
                for run in ours:
                    if stuck_reason(run, now, self._stuck_after) is None:
                        quiet.append(self._seen(brand, run))
                    else:
                        suspects.append(run)
                if quiet:
                    yield quiet
                for run in suspects:
                    judged = await self._judge(brand, run, now, reads, listed=True)
                    if judged is not None:
                        yield [judged]
                shown = {run.run_id for run in ours}
                for run_id in read.due:
                    if run_id not in shown:
                        judged = await self._unlisted(brand, run_id, now, reads)
                        if judged is not None:
                            yield [judged]
        finally:
            self._stages.publish()

    async def read_run(self, run: RunRecord, reads: ReadSlots) -> RunRead | None:
        brand = self.brand(run)
        if brand is None:
            return None
        try:
            found = await reads.read("detail", partial(self._client.get_run, brand, run.run_id))
        except ApiError as exc:
            _unless_unknown(exc)
            return None
        return self._seen(brand, found)

    def _seen(self, brand: str, run: BmRun) -> RunRead:
        """The run as read; one canceled as stuck reads ``failed``: report the cancel."""
        why = self._canceled.get(run.run_id)
        if why is not None and is_terminal(run.status):
            self._stages.forget(run.run_id)
            return dataclasses.replace(run.run_read(), status="canceled", error=why, refire=True)
        self._stages.saw(run, brand)
        return run.run_read()

    async def _unlisted(
        self, brand: str, run_id: str, now: float, reads: ReadSlots
    ) -> RunRead | None:
        """A due run the brand's list did not show, read by id."""
        try:
            run = await reads.read("detail", partial(self._client.get_run, brand, run_id))
        except ApiError as exc:
            _unless_unknown(exc)  # neither read knows the run
            self._stages.forget(run_id)
            return RunRead(
                run_id,
                "failed",
                error=(
                    f"Boring Marketing no longer knows run {run_id} of brand {brand}: the "
                    f"brand's runs do not show it and reading it answered {exc.status} "
                    f"({exc.message})"
                ),
                logs=(),
            )
        return await self._judge(brand, run, now, reads, listed=False)

    async def _judge(
        self, brand: str, run: BmRun, now: float, reads: ReadSlots, *, listed: bool
    ) -> RunRead | None:
        """The run, canceled first when it is stuck; None when a read settled nothing."""
        why = stuck_reason(run, now, self._stuck_after)
        if why is None:
            return self._seen(brand, run)
        if listed and not run.has_meta:  # cut short: judge its stage by the run itself
            try:
                run = await reads.read("detail", partial(self._client.get_run, brand, run.run_id))
            except ApiError as exc:
                _unless_unknown(exc)  # gone between two reads: the next cycle's reads judge it
                return None
            return await self._judge(brand, run, now, reads, listed=False)
        self._canceled[run.run_id] = why
        try:
            canceled = await reads.read("cancel", partial(self._cancel_live, brand, run.run_id))
        except ApiError as exc:
            del self._canceled[run.run_id]
            _unless_unknown(exc)  # unknown: the next cycle's reads say what became of it
            return None
        if not canceled:  # it ended meanwhile: the next read says how
            del self._canceled[run.run_id]
            return self._seen(brand, run)
        if self._metrics is not None:
            self._metrics.stuck_runs_canceled.labels(target=self._target).inc()
        log.warning(
            "stuck run canceled at Boring Marketing; its event fires again",
            target=self._target,
            run_id=run.run_id,
            brand_id=brand,
            stage=run.stage,
            error=why,
        )
        self._stages.forget(run.run_id)
        return dataclasses.replace(run.run_read(), status="canceled", error=why, refire=True)

    async def _cancel_live(self, brand: str, run_id: str) -> bool:
        """Cancel the run; False when it is not live any more (the API's 400)."""
        try:
            await self._client.cancel_run(brand, run_id)
        except ApiError as exc:
            if exc.status == 400:
                return False
            raise
        return True


def _unless_unknown(error: ApiError) -> None:
    """Re-raise ``error`` unless it is a 404 saying the brand or run is unknown (the
    poller's read slots pass on no other answer, but an AuthError is never about a run)."""
    if error.status != 404 or isinstance(error, AuthError):
        raise error
