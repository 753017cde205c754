"""Everything the Pinkfish simulator remembers: triggers, keys, runs, faults, requests.

No HTTP here (:mod:`~brew_bridge.sim.pinkfish.app` reads requests and renders
answers): the data and the rules on it, so they read as the API's. One
:class:`PinkfishState` lives in one event loop; nothing here blocks. The clock is
injected, and a run's status is computed from its plan when asked
(:mod:`~brew_bridge.sim.pinkfish.runclock`), so tests need no sleeping.

Keys belong to an account; an account sees its own runs and the triggers that are its
own or everyone's. Another account's run is not found (404), never refused.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from brew_bridge.sim.brew.faults import Faults, parse_faults
from brew_bridge.sim.brew.logged import Log
from brew_bridge.sim.brew.logged import Logged as BaseLogged
from brew_bridge.sim.pinkfish.ids import RunIds
from brew_bridge.sim.pinkfish.runclock import RunPlan, StepView, run_status, step_views
from brew_bridge.sim.pinkfish.seed import KeySpec, Seed, TriggerSpec, account_for_key

__all__ = ["Logged", "PinkfishState", "Refused", "RequestLog", "Run", "Trigger"]


@dataclass(slots=True)
class Run:
    """One workflow run, fixed at fire time; its status follows from ``plan``.

    A stuck run's clock stops at ``frozen_at`` (it stays as it was then); thawed, it
    goes on from there, later by the time it was stuck (``paused``).
    """

    run_id: str
    spec: TriggerSpec  # the trigger as it was when fired
    account: str
    plan: RunPlan
    frozen_at: float | None = None
    paused: float = 0.0

    @property
    def automation_id(self) -> str:
        return self.spec.automation_id

    def moment(self, now: float) -> float:
        """The point of the run's plan it has reached at ``now``."""
        at = now if self.frozen_at is None else min(now, self.frozen_at)
        return at - self.paused

    def status(self, now: float) -> str:
        return run_status(self.plan, self.moment(now))

    def steps(self, now: float) -> tuple[StepView, ...]:
        return step_views(self.plan, self.moment(now))

    def stick(self, now: float) -> None:
        if self.frozen_at is None:
            self.frozen_at = now

    def unstick(self, now: float) -> None:
        if self.frozen_at is not None:
            self.paused += max(0.0, now - self.frozen_at)
            self.frozen_at = None


@dataclass
class Trigger:
    """A trigger as stored: its spec and where its outcome draws stand."""

    spec: TriggerSpec
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(f"{self.spec.random_seed}:{self.spec.trigger_id}")

    def next_outcome(self) -> str:
        """The outcome of the next run: the sequence, a draw, or the one outcome."""
        spec = self.spec
        self.fired += 1
        if spec.outcomes is not None:
            return spec.outcomes[(self.fired - 1) % len(spec.outcomes)]
        if spec.probabilities is not None:
            names = list(spec.probabilities)
            return self.rng.choices(names, [spec.probabilities[n] for n in names])[0]
        return spec.outcome


class Logged(BaseLogged):
    """One API request in the request log; its path never holds the API key.
    ``header``: the x-api-wait header as sent."""

    __slots__ = ()
    HEADER = "apiWait"


class RequestLog(Log[Logged]):
    """Every API request received, oldest first, newest ``size`` kept."""


@dataclass
class PinkfishState:
    """The whole simulated Pinkfish: built from a :class:`Seed`, back to it on :meth:`reset`."""

    seed: Seed
    clock: Callable[[], float] = time.time
    triggers: dict[str, Trigger] = field(init=False)
    keys: dict[str, KeySpec] = field(init=False)
    runs: dict[str, Run] = field(init=False)
    faults: Faults = field(init=False)
    requests: RequestLog = field(init=False)
    _run_ids: RunIds = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, seed: Seed | None = None) -> None:
        """Back to ``seed`` (default: the current one): no runs or requests left over."""
        if seed is not None:
            self.seed = seed
        seed = self.seed
        self.triggers = {tid: Trigger(spec) for tid, spec in (seed.triggers or {}).items()}
        self.keys = dict(seed.keys or {})
        self.runs = {}
        self.faults = parse_faults(seed.faults or {})
        self.requests = RequestLog(seed.request_log_size)
        self._run_ids = RunIds()

    def authenticate(self, api_key: str | None) -> str:
        """The account ``api_key`` acts for; raises :class:`Refused` with the error code."""
        if not api_key:
            raise Refused("MISSING_API_KEY")
        spec = self.keys.get(api_key)
        if spec is None:
            if not self.seed.allow_any_key:
                raise Refused("INVALID_API_KEY")
            return account_for_key(api_key)
        if spec.revoked:
            raise Refused("API_KEY_REVOKED")
        return spec.account

    def put_trigger(self, spec: TriggerSpec) -> Trigger:
        trigger = Trigger(spec)
        self.triggers[spec.trigger_id] = trigger
        return trigger

    def trigger(self, account: str, trigger_id: str) -> Trigger | None:
        """The trigger if this account may fire it: another account's is not found."""
        trigger = self.triggers.get(trigger_id)
        if trigger is None or trigger.spec.account not in (None, account):
            return None
        return trigger

    def fire(self, account: str, trigger: Trigger, now: float) -> Run:
        spec = trigger.spec
        run = Run(
            run_id=self._run_ids.next(now),
            spec=spec,
            account=account,
            plan=RunPlan(
                created_at=now,
                pending_seconds=spec.pending_seconds,
                duration_seconds=spec.duration_ms / 1000.0,
                outcome=trigger.next_outcome(),
                steps=spec.steps,
            ),
        )
        if spec.stuck:  # frozen the moment it starts running
            run.frozen_at = run.plan.start
        self.runs[run.run_id] = run
        return run

    def run(self, account: str, automation_id: str, run_id: str) -> Run | None:
        """The run if it is this account's and of this automation."""
        run = self.runs.get(run_id)
        if run is None or run.account != account or run.automation_id != automation_id:
            return None
        return run


class Refused(Exception):
    """A request refused before it is looked at; ``code`` is the error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
