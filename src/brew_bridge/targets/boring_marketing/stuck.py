"""When a live run counts as stuck: a pure function of the run's body and the time.

Seed 004: "If a run appears stuck (no ``stage_started_at`` progress for more than 15
minutes), mark it as failed and re-trigger." A run's progress is its
``meta.stage_started_at``, or its ``started_at`` (when it was accepted) while it shows
no stage: queued, or an endpoint that emits none (``/discover``: such a run is judged
by its age alone, so ``stuck_after_seconds`` must exceed its longest run). A run at its
end is never stuck, and one with neither time cannot be judged.

Since ``stage_started_at`` is never before ``started_at``, a run that is not stuck by
its ``started_at`` is not stuck at all: a list entry without ``meta`` (the document's
entries are cut short) needs a read by id only when it is stuck by that measure.
"""

from __future__ import annotations

from brew_bridge.events import is_terminal
from brew_bridge.targets.boring_marketing.wire import BmRun
from brew_bridge.timefmt import iso_utc

__all__ = ["stuck_reason"]


def stuck_reason(run: BmRun, now: float, after: float) -> str | None:
    """Why ``run`` is stuck at ``now`` (no progress for more than ``after`` seconds),
    as the error its cancel is recorded with; None when it is not."""
    if is_terminal(run.status):
        return None
    in_stage = run.stage_started_at is not None
    since = run.stage_started_at if in_stage else run.started_at
    if since is None or now - since <= after:
        return None
    where = f"in stage {run.stage}" if in_stage else f"{run.status}, no stage"
    return (
        f"stuck: no stage progress for {now - since:.0f} s ({where} since {iso_utc(since)}), "
        f"more than {after:g} s: canceled at Boring Marketing"
    )
