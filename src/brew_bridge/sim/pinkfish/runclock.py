"""A simulated workflow run as a pure function of time: no background task moves it.

A run is fixed when its trigger fires (:class:`RunPlan`); its status and the status of
each step at any moment follow from the plan and the moment asked about::

    created_at ──PENDING── start ──RUNNING── end ──> COMPLETE | FAILED | TIMEOUT

The steps share the running time evenly, one after another (step 1 from ``start``).
Every step but the last ends ``COMPLETE``; the last one ends with the run's outcome
(it is the one that failed or ran out of time). A step not started yet is ``PENDING``.
The moment a run is asked about is the state's business (a stuck run's clock stops:
:meth:`~brew_bridge.sim.pinkfish.state.Run.moment`).
"""

from __future__ import annotations

from dataclasses import dataclass

from brew_bridge.sim.brew.runclock import PlanTimes

__all__ = ["OUTCOMES", "TERMINAL", "RunPlan", "StepView", "run_status", "step_views"]

OUTCOMES = ("COMPLETE", "FAILED", "TIMEOUT")
TERMINAL = frozenset(OUTCOMES)


@dataclass(frozen=True)
class RunPlan(PlanTimes):
    """What a run will do, decided when it is fired (``outcome``: one of OUTCOMES)."""

    steps: tuple[str, ...]  # the steps' names, in execution order


@dataclass(frozen=True)
class StepView:
    """One step at some moment (``index`` is 1-based, its ``executionOrder``)."""

    index: int
    name: str
    status: str  # PENDING | RUNNING | COMPLETE | FAILED | TIMEOUT
    started_at: float | None
    ended_at: float | None


def run_status(plan: RunPlan, at: float) -> str:
    if at >= plan.end:
        return plan.outcome
    if at >= plan.start:
        return "RUNNING"
    return "PENDING"


def step_views(plan: RunPlan, at: float) -> tuple[StepView, ...]:
    """Every step of the run at ``at``, in execution order."""
    step = (plan.end - plan.start) / len(plan.steps)
    last = len(plan.steps) - 1
    views: list[StepView] = []
    for i, name in enumerate(plan.steps):
        begins = plan.start + i * step
        ends = plan.end if i == last else begins + step
        if at < begins:
            views.append(StepView(i + 1, name, "PENDING", None, None))
        elif at < ends:
            views.append(StepView(i + 1, name, "RUNNING", begins, None))
        else:
            status = plan.outcome if i == last else "COMPLETE"
            views.append(StepView(i + 1, name, status, begins, ends))
    return tuple(views)
