"""Before a late re-fire: did an earlier attempt start runs the target has forgotten?

A target remembers an Idempotency-Key for a while (Brew: 24 h) and answers a repeat
with the runs it started the first time. A delivery first tried longer ago than that
could fire twice: its repeat is a new fire. Which earlier attempt may have been an
acceptance is not knowable from the last error alone (a timeout after sending, then
429s), and such late fires are rare (retries stop at ``max_age_seconds``; a crash left
the row firing; an outage outlasted the window), so every late fire is looked up first:
the dispatcher asks the target for the runs it started from just before the first
attempt until now (:meth:`~brew_bridge.typing.Target.find_runs`):

* runs found: they are adopted (recorded, followed), nothing is fired;
* none: nothing was started, the delivery fires;
* the target cannot tell (no recipient to look by, too many candidates): an
  ``outcome_unknown`` dead letter; an operator decides (``dlq redrive`` fires it).
"""

from __future__ import annotations

from typing import Final

from ..store import DeliveryRow

__all__ = ["LOOKUP_BEFORE_SECONDS", "lookup_window", "needs_lookup"]

# The lookup window opens this long before the first attempt (clocks differ; a run's
# start is the target's time, the attempt is ours).
LOOKUP_BEFORE_SECONDS: Final = 300.0


def needs_lookup(row: DeliveryRow, now: float, *, key_window: float, margin: float) -> bool:
    """Whether ``row`` was first tried longer ago than the target keeps keys (less
    ``margin``): then it is looked up before it fires again."""
    return row.first_attempt_at is not None and now - row.first_attempt_at >= key_window - margin


def lookup_window(row: DeliveryRow, now: float) -> tuple[float, float]:
    """From just before the first attempt until now."""
    first = row.first_attempt_at if row.first_attempt_at is not None else now
    return first - LOOKUP_BEFORE_SECONDS, now
