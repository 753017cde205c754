"""Everything the Boring Marketing simulator remembers: brands, keys, pipelines, runs.

No HTTP here (:mod:`~brew_bridge.sim.boring_marketing.app` reads requests and renders
answers): the data and the API's rules on it. One :class:`BoringState` lives in one
event loop; nothing here blocks. The clock is injected and a run's progress is computed
from its plan when asked (:mod:`~brew_bridge.sim.boring_marketing.runclock`), so tests
need no sleeping.

The rules: a key acts for the brands it lists (every brand when it lists none); another
brand is not found (404), never refused. A brand has at most one run in progress: a fire
while one is queued or running is a 409 naming it, so the live run, if any, is always
the brand's newest.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brew_bridge.sim.boring_marketing.runclock import LIVE, RunPlan, RunView, Stage, run_view
from brew_bridge.sim.boring_marketing.seed import (
    BrandSpec,
    KeySpec,
    PipelineSpec,
    Seed,
)
from brew_bridge.sim.brew.faults import Faults, parse_faults
from brew_bridge.sim.brew.logged import Logged as BaseLogged

__all__ = ["BoringState", "Logged", "Pipeline", "Refused", "Run", "mask_key"]

# The document's key format: bm_ and hex. With allowAnyKey, any key of this shape works.
KEY_PREFIX = "bm_"


def mask_key(api_key: str | None) -> str | None:
    """A key as the request log shows it: its prefix and last four characters."""
    if not api_key:
        return None
    return f"{api_key[:3]}…{api_key[-4:]}" if len(api_key) > 8 else "…"


class Refused(Exception):
    """A request the API refuses: its status and ``detail``, and headers to send."""

    def __init__(self, status: int, detail: object, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass(slots=True)
class Run:
    """One pipeline run, fixed at fire time; what it shows follows from ``plan``."""

    run_id: str
    brand_id: str
    endpoint: str
    kind: str
    plan: RunPlan
    body: Any = None  # the fire's request body
    frozen_at: float | None = None  # stuck from then on
    canceled_at: float | None = None

    def view(self, now: float) -> RunView:
        return run_view(self.plan, now, frozen_at=self.frozen_at, canceled_at=self.canceled_at)

    def status(self, now: float) -> str:
        return self.view(now).status

    def stick(self, now: float) -> bool:
        """Stop the run where it is now; False (nothing done) when it is not live."""
        if self.status(now) not in LIVE:
            return False
        if self.frozen_at is None:
            self.frozen_at = now
        return True


@dataclass
class Pipeline:
    """One endpoint's pipeline as stored: its spec and where its outcome draws stand."""

    spec: PipelineSpec
    random_seed: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(f"{self.random_seed}:{self.spec.endpoint}")

    def next_outcome(self) -> str:
        """The next run's outcome: the sequence, else a draw against failureRate."""
        spec = self.spec
        self.fired += 1
        if spec.outcomes is not None:
            return spec.outcomes[(self.fired - 1) % len(spec.outcomes)]
        if spec.failure_rate and self.rng.random() < spec.failure_rate:
            return "failed"
        return spec.outcome

    def plan(self, now: float, outcome: str) -> RunPlan:
        spec = self.spec
        names: tuple[str | None, ...] = spec.stages or (None,)
        return RunPlan(
            created_at=now,
            queued_seconds=spec.queued_ms / 1000.0,
            stages=tuple(Stage(name, spec.seconds(name)) for name in names),
            outcome="failed" if outcome == "failed" else "done",
            error=spec.error if outcome == "failed" else None,
            fail_stage=spec.stages.index(spec.fail_stage) if spec.fail_stage else -1,
        )


class Logged(BaseLogged):
    """One API request in the request log (the key masked). ``header``: the key, masked."""

    __slots__ = ()
    HEADER = "apiKey"


@dataclass
class BoringState:
    """The whole simulated Boring Marketing: built from a :class:`Seed`, back to it on
    :meth:`reset`."""

    seed: Seed
    clock: Callable[[], float] = time.time
    brands: dict[str, BrandSpec] = field(init=False)
    keys: dict[str, KeySpec] = field(init=False)
    pipelines: dict[str, Pipeline] = field(init=False)
    runs: dict[str, Run] = field(init=False)
    brand_runs: dict[str, list[Run]] = field(init=False)  # per brand, oldest first
    faults: Faults = field(init=False)
    requests: deque[Logged] = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, seed: Seed | None = None) -> None:
        """Back to ``seed`` (default: the current one): no runs or requests left over."""
        if seed is not None:
            self.seed = seed
        seed = self.seed
        self.brands = dict(seed.brands)
        self.keys = dict(seed.keys)
        self.pipelines = {}
        self.runs = {}
        self.brand_runs = {}
        self.faults = parse_faults(seed.faults)
        self.requests = deque(maxlen=seed.request_log_size)

    # -- who is asking ---------------------------------------------------------------

    def authenticate(self, api_key: str | None) -> KeySpec:
        """The key's spec; raises :class:`Refused` 401 for a missing, unknown or revoked key."""
        if not api_key:
            raise Refused(401, "Missing API key: send it in the X-API-Key header")
        spec = self.keys.get(api_key)
        if spec is None:
            if not (self.seed.allow_any_key and api_key.startswith(KEY_PREFIX)):
                raise Refused(401, "Invalid API key")
            return KeySpec()
        if spec.revoked:
            raise Refused(401, "API key has been revoked")
        return spec

    def brand(self, key: KeySpec, brand_id: str) -> str:
        """``brand_id`` if it exists and the key may act for it; else 404."""
        known = brand_id in self.brands or self.seed.allow_any_brand
        if not known or (key.brands is not None and brand_id not in key.brands):
            raise Refused(404, "Brand not found")
        return brand_id

    # -- runs ------------------------------------------------------------------------

    def pipeline(self, endpoint: str) -> Pipeline:
        pipeline = self.pipelines.get(endpoint)
        if pipeline is None:
            pipeline = Pipeline(self.seed.pipeline(endpoint), self.seed.random_seed)
            self.pipelines[endpoint] = pipeline
        return pipeline

    def put_pipeline(self, spec: PipelineSpec) -> Pipeline:
        pipeline = Pipeline(spec, self.seed.random_seed)
        self.pipelines[spec.endpoint] = pipeline
        return pipeline

    def fire(self, brand_id: str, endpoint: str, body: Any, now: float) -> Run:
        """Start a run of ``endpoint`` for the brand; 409 while another is in progress."""
        history = self.brand_runs.setdefault(brand_id, [])
        if history and history[-1].status(now) in LIVE:
            raise Refused(
                409,
                "A run is already in progress for this brand",
                {"X-Running-Run-Id": history[-1].run_id},
            )
        pipeline = self.pipeline(endpoint)
        outcome = pipeline.next_outcome()
        run = Run(
            run_id=str(uuid.uuid4()),
            brand_id=brand_id,
            endpoint=endpoint,
            kind=pipeline.spec.kind,
            plan=pipeline.plan(now, outcome),
            body=body,
        )
        if outcome == "stuck":
            run.frozen_at = run.plan.start  # it starts its first stage and goes no further
        self.runs[run.run_id] = run
        history.append(run)
        return run

    def run(self, brand_id: str, run_id: str) -> Run:
        """The brand's run ``run_id``; 404 for an unknown one or another brand's."""
        run = self.runs.get(run_id)
        if run is None or run.brand_id != brand_id:
            raise Refused(404, "Run not found")
        return run

    def runs_of(self, brand_id: str) -> list[Run]:
        """The brand's runs, newest first."""
        return list(reversed(self.brand_runs.get(brand_id, [])))

    def cancel(self, run: Run, now: float) -> None:
        """Mark a live run failed; a run at its end is a 400 saying its status."""
        status = run.status(now)
        if status not in LIVE:
            raise Refused(400, f"Run is {status}, not queued or running")
        run.canceled_at = now
