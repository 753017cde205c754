"""A simulated run's life as a pure function of time: no background task moves it.

A run is fixed when it is fired (:class:`RunPlan`: fire time, queue time, duration,
outcome, nodes); its status and node logs at any moment follow from that plan, the
moment asked about, and — if it was canceled — when. The timeline::

    created_at ──pending── start ──running── end ──> completed | failed | partially_completed
                                  (canceled_at before end: canceled from then on)

During ``running`` the first node (the trigger) succeeds at ``start`` and the other nodes
share the running time evenly, one after another. A failed run's last node ends in
``error`` with the run's error; a partially completed run skips its last node; a
canceled run's node in progress is skipped and later nodes never start.

Statuses here are the 9.3.0 words (``pending``, log ``success``/``error``); the app
translates them for the newer API shape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_NODES",
    "LIVE",
    "OUTCOMES",
    "TERMINAL",
    "NodeLog",
    "NodeSpec",
    "RunPlan",
    "RunView",
    "run_status",
    "run_view",
]

OUTCOMES = frozenset({"completed", "failed", "partially_completed"})
TERMINAL = frozenset({"completed", "failed", "partially_completed", "canceled"})
LIVE = frozenset({"pending", "running"})


@dataclass(frozen=True)
class NodeSpec:
    """One node of an automation's flow."""

    node_id: str
    node_name: str
    node_type: str  # trigger | wait | filter | split | sendEmail


DEFAULT_NODES = (
    NodeSpec("trigger", "On trigger", "trigger"),
    NodeSpec("send_email", "Send email", "sendEmail"),
)


@dataclass(frozen=True)
class PlanTimes:
    """When a run, fixed at fire time, starts and ends (the Brew and Pinkfish runs' plans:
    pending, then running, then the outcome). Times are epoch seconds."""

    created_at: float
    pending_seconds: float
    duration_seconds: float  # from fire to the terminal status
    outcome: str  # the terminal status

    @property
    def start(self) -> float:
        return self.created_at + min(self.pending_seconds, self.duration_seconds)

    @property
    def end(self) -> float:
        return self.created_at + self.duration_seconds


@dataclass(frozen=True)
class RunPlan(PlanTimes):
    """What a run will do, decided when it is fired (``outcome``: one of OUTCOMES)."""

    error: str | None = None  # the run's error when the outcome is failed
    nodes: tuple[NodeSpec, ...] = DEFAULT_NODES


@dataclass(frozen=True)
class NodeLog:
    """One node's log row at some moment."""

    node_id: str
    node_name: str
    node_type: str
    order_index: int
    status: str  # running | success | error | skipped
    started_at: float
    completed_at: float | None
    error: str | None = None


@dataclass(frozen=True)
class RunView:
    """A run as seen at one moment."""

    status: str
    started_at: float | None
    completed_at: float | None
    error: str | None
    logs: tuple[NodeLog, ...]


def run_status(plan: RunPlan, now: float, canceled_at: float | None = None) -> str:
    """The run's status at ``now`` (cheap: no logs)."""
    if canceled_at is not None and canceled_at < plan.end and now >= canceled_at:
        return "canceled"
    if now >= plan.end:
        return plan.outcome
    if now >= plan.start:
        return "running"
    return "pending"


def _node_times(plan: RunPlan) -> list[tuple[float, float]]:
    """(start, end) of every node: the trigger at ``start``, the rest sharing the run."""
    start, end = plan.start, plan.end
    times = [(start, start)]
    rest = len(plan.nodes) - 1
    if rest > 0:
        step = (end - start) / rest
        times.extend((start + i * step, start + (i + 1) * step) for i in range(rest))
    return times


def run_view(plan: RunPlan, now: float, canceled_at: float | None = None) -> RunView:
    """The run's status, times, error and node logs at ``now``."""
    status = run_status(plan, now, canceled_at)
    canceled = status == "canceled"
    # The moment the run stopped (or will stop); nodes starting later never run.
    stop = canceled_at if canceled and canceled_at is not None else plan.end
    started_at = plan.start if now >= plan.start and plan.start <= stop else None
    completed_at = stop if status in TERMINAL else None
    error = plan.error if status == "failed" else None
    logs: list[NodeLog] = []
    last = len(plan.nodes) - 1
    for index, (node, (n_start, n_end)) in enumerate(
        zip(plan.nodes, _node_times(plan), strict=True)
    ):
        if n_start > now or (canceled and n_start > stop):
            break
        node_error: str | None = None
        done_at: float | None = n_end
        if canceled and n_end > stop:
            node_status, done_at = "skipped", stop
        elif now < n_end:
            node_status, done_at = "running", None
        elif index == last and plan.outcome == "failed":
            node_status, node_error = "error", plan.error
        elif index == last and plan.outcome == "partially_completed":
            node_status = "skipped"
        else:
            node_status = "success"
        logs.append(
            NodeLog(
                node.node_id,
                node.node_name,
                node.node_type,
                index,
                node_status,
                n_start,
                done_at,
                node_error,
            )
        )
    return RunView(status, started_at, completed_at, error, tuple(logs))
