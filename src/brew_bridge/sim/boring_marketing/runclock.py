"""A simulated pipeline run as a pure function of time: no background task moves it.

A run is fixed when it is fired (:class:`RunPlan`); what it shows at any moment follows
from the plan, the moment asked about, and two things that may happen to it::

    created_at ──queued── start ──running: stage 1, stage 2, ...── end ──> done | failed

A failed run fails at the end of its ``fail_stage`` (later stages never run). A run
**stuck** at ``frozen_at`` stays where it was then, running, its ``stage_started_at``
no longer moving; a run **canceled** at ``canceled_at`` (only while live) is ``failed``
from then on, in the stage it had reached, with :data:`CANCELED_ERROR`. Both only
happen to a live run (``frozen_at`` and ``canceled_at`` before its end).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CANCELED_ERROR",
    "LIVE",
    "OUTCOMES",
    "RunPlan",
    "RunView",
    "Stage",
    "run_status",
    "run_view",
]

OUTCOMES = frozenset({"done", "failed"})
LIVE = frozenset({"queued", "running"})
# What a canceled run's error says (the document: cancelling "marks it as failed").
CANCELED_ERROR = "Run cancelled via API"


@dataclass(frozen=True)
class Stage:
    """One stage of a run: its name (None: a stage the endpoint does not emit) and length."""

    name: str | None
    seconds: float


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided when it is fired. Times are epoch seconds."""

    created_at: float
    queued_seconds: float
    stages: tuple[Stage, ...]  # at least one
    outcome: str  # one of OUTCOMES
    error: str | None = None  # a failed run's error
    fail_stage: int = -1  # the index of the stage a failed run fails in (default: the last)

    @property
    def start(self) -> float:
        return self.created_at + self.queued_seconds

    @property
    def last_stage(self) -> int:
        """The index of the last stage the run goes through."""
        if self.outcome == "failed":
            return self.fail_stage % len(self.stages)
        return len(self.stages) - 1

    @property
    def end(self) -> float:
        return self.start + sum(s.seconds for s in self.stages[: self.last_stage + 1])

    def stage_at(self, moment: float) -> tuple[int, float]:
        """The stage in progress at ``moment`` (clamped to the run's stages) and its start."""
        began = self.start
        for index in range(self.last_stage + 1):
            ends = began + self.stages[index].seconds
            if moment < ends or index == self.last_stage:
                return index, began
            began = ends
        raise AssertionError("unreachable: the loop returns at the last stage")


@dataclass(frozen=True)
class RunView:
    """A run as seen at one moment."""

    status: str  # queued | running | done | failed
    finished_at: float | None
    error: str | None
    stage: str | None  # meta.current_stage
    stage_started_at: float | None  # while running in a named stage
    stage_progress: float  # 0..1 through the stage in progress


def _moment(plan: RunPlan, at: float, frozen_at: float | None, canceled_at: float | None) -> float:
    """How far along its plan the run is at ``at``: a stuck or canceled run stopped."""
    moment = at
    for stop in (frozen_at, canceled_at):
        if stop is not None:
            moment = min(moment, stop)
    return moment


def run_status(
    plan: RunPlan, at: float, *, frozen_at: float | None = None, canceled_at: float | None = None
) -> str:
    """The run's status at ``at`` (cheap: no stage)."""
    if canceled_at is not None and at >= canceled_at:
        return "failed"
    moment = _moment(plan, at, frozen_at, canceled_at)
    if moment < plan.start:
        return "queued"
    return plan.outcome if moment >= plan.end else "running"


def run_view(
    plan: RunPlan, at: float, *, frozen_at: float | None = None, canceled_at: float | None = None
) -> RunView:
    """Everything the run object shows at ``at``."""
    status = run_status(plan, at, frozen_at=frozen_at, canceled_at=canceled_at)
    moment = _moment(plan, at, frozen_at, canceled_at)
    reached = moment >= plan.start
    index, began = plan.stage_at(moment)
    stage = plan.stages[index] if reached else None
    name = stage.name if stage is not None else None
    if status == "queued":
        return RunView(status, None, None, None, None, 0.0)
    if status == "running":
        assert stage is not None
        progress = (moment - began) / stage.seconds if stage.seconds > 0 else 1.0
        started = began if name is not None else None
        return RunView(status, None, None, name, started, min(1.0, progress))
    if canceled_at is not None and at >= canceled_at:
        return RunView("failed", canceled_at, CANCELED_ERROR, name, None, 0.0)
    error = plan.error if status == "failed" else None
    return RunView(status, plan.end, error, name, None, 1.0)
