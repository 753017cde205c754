"""Everything the simulator remembers: triggers, keys, runs, idempotency, limits, faults.

No HTTP here: :mod:`brew_bridge.sim.brew.app` and the route modules it wires read
requests and render answers; this module holds the data and the operations on it
(authenticate, start runs, cancel, list) so they read as the API's rules, not as request
plumbing. One :class:`SimState` lives in one event loop; nothing here blocks. The clock
is injected (``clock``), so a run's status — computed from its plan when asked
(:mod:`runclock`) — can be tested without sleeping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brew_bridge.sim.brew.faults import Faults, parse_faults
from brew_bridge.sim.brew.idempotency import IdempotencyStore
from brew_bridge.sim.brew.logged import Log
from brew_bridge.sim.brew.ratewindow import DEFAULT_POLICIES, RateLimiter
from brew_bridge.sim.brew.runclock import RunPlan, run_status
from brew_bridge.sim.brew.seed import (
    AutomationSpec,
    KeySpec,
    Seed,
    TriggerSpec,
    brand_for_key,
)
from brew_bridge.timefmt import iso_utc

__all__ = [
    "AT",
    "BODY",
    "FAULT",
    "KEY",
    "METHOD",
    "PATH",
    "QUERY",
    "REQUEST_ID",
    "STATUS",
    "AuthRefusal",
    "Caller",
    "RequestLog",
    "Run",
    "RunFilter",
    "SimState",
    "Trigger",
    "new_id",
]


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A fresh opaque id such as ``run_…`` or ``tin_…``: ``prefix`` + random lowercase hex."""
    return prefix + os.urandom(nbytes).hex()


@dataclass(frozen=True)
class Caller:
    """Who is asking: the key (for its rate windows) and the brand it acts for."""

    api_key: str
    brand_id: str


@dataclass(frozen=True)
class AuthRefusal:
    """Why a request is refused before it is looked at: an error code and its param."""

    code: str
    param: str | None = None


@dataclass
class Trigger:
    """A trigger as stored: its spec plus the times the API reports."""

    spec: TriggerSpec
    created_at: str
    updated_at: str

    def visible_to(self, brand_id: str) -> bool:
        return self.spec.brand_id is None or self.spec.brand_id == brand_id

    @property
    def published(self) -> list[AutomationSpec]:
        return [a for a in self.spec.automations if a.published]


@dataclass(slots=True)
class Run:
    """One automation run, fixed at fire time; its status follows from ``plan``."""

    seq: int
    run_id: str
    brand_id: str
    automation: AutomationSpec
    trigger_event_id: str
    trigger_instance_id: str
    recipient_email: str | None
    plan: RunPlan
    mode: str = "live"
    canceled_at: float | None = None
    cancel_reason: str | None = None

    def status(self, now: float) -> str:
        return run_status(self.plan, now, self.canceled_at)


@dataclass(frozen=True)
class RunFilter:
    """The list-mode filters of ``GET /v1/automations/runs`` (``status`` in 9.3 words)."""

    automation_id: str | None = None
    trigger_event_id: str | None = None
    trigger_instance_id: str | None = None
    recipient_email: str | None = None
    statuses: frozenset[str] | None = None  # internal statuses that match the wire filter
    mode: str | None = None
    from_: float | None = None
    to: float | None = None


# Positions in a request-log entry (a list, so recording costs one append).
AT, METHOD, PATH, QUERY, KEY, BODY, STATUS, FAULT, REQUEST_ID = range(9)


class RequestLog(Log[list[Any]]):
    """Every API request received, oldest first, newest ``size`` kept. Cheap to append."""

    def start(
        self, at: float, method: str, path: str, query: bytes, key: str | None, request_id: str
    ) -> list[Any]:
        """Record a request as it arrives; the caller fills in body, status and fault."""
        entry = [at, method, path, query, key, None, None, None, request_id]
        self._entries.append(entry)
        return entry


@dataclass
class SimState:
    """The whole simulated Brew: built from a :class:`Seed`, back to it on :meth:`reset`."""

    seed: Seed
    api_shape_override: str | None = None
    clock: Callable[[], float] = time.time
    api_shape: str = field(init=False)
    triggers: dict[str, Trigger] = field(init=False)
    keys: dict[str, KeySpec] = field(init=False)
    allow_any_brew_key: bool = field(init=False)
    runs: dict[str, Run] = field(init=False)
    run_order: list[Run] = field(init=False)
    idempotency: IdempotencyStore = field(init=False)
    limiter: RateLimiter = field(init=False)
    faults: Faults = field(init=False)
    requests: RequestLog = field(init=False)
    _default_keys: dict[str, KeySpec] = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, seed: Seed | None = None) -> None:
        """Back to ``seed`` (default: the current one): no runs, keys or windows left over."""
        if seed is not None:
            self.seed = seed
        seed = self.seed
        self.api_shape = self.api_shape_override or seed.api_shape or "9.3"
        stamp = iso_utc(self.clock())
        self.triggers = {
            tid: Trigger(spec, stamp, stamp) for tid, spec in (seed.triggers or {}).items()
        }
        self.keys = dict(seed.keys or {})
        self.allow_any_brew_key = seed.allow_any_brew_key
        self._default_keys = {}
        self.runs = {}
        self.run_order = []
        self.idempotency = IdempotencyStore(seed.idempotency_window_seconds)
        self.limiter = RateLimiter({**DEFAULT_POLICIES, **(seed.limits or {})})
        self.faults = parse_faults(seed.faults or {})
        self.requests = RequestLog(seed.request_log_size)

    # -- keys and brands -------------------------------------------------------------

    def _key_spec(self, api_key: str) -> KeySpec | None:
        spec = self.keys.get(api_key)
        if spec is not None:
            return spec
        if not (self.allow_any_brew_key and api_key.startswith("brew_")):
            return None
        spec = self._default_keys.get(api_key)
        if spec is None:
            spec = KeySpec(brand_id=brand_for_key(api_key), brands=None)
            self._default_keys[api_key] = spec
        return spec

    def authenticate(
        self, api_key: str | None, malformed: bool, brand_header: str | None
    ) -> Caller | AuthRefusal:
        """Brew's gates before any route logic (brew-api.md §1.1, §1.2).

        ``malformed``: credentials were sent in a form Brew cannot read (not ``Bearer``).
        """
        if malformed:
            return AuthRefusal("INVALID_API_KEY")
        if not api_key:
            return AuthRefusal("AUTHENTICATION_REQUIRED")
        spec = self._key_spec(api_key)
        if spec is None:
            return AuthRefusal("INVALID_API_KEY")
        if spec.revoked:
            return AuthRefusal("API_KEY_REVOKED")
        if "all" not in spec.scopes and "automations" not in spec.scopes:
            return AuthRefusal("INSUFFICIENT_PERMISSIONS", "automations")
        if spec.brands is not None:  # organization key: the brand must be named
            if not brand_header:
                return AuthRefusal("BRAND_ID_REQUIRED", "X-Brand-Id")
            if brand_header not in spec.brands:
                return AuthRefusal("BRAND_NOT_FOUND", "X-Brand-Id")
            return Caller(api_key, brand_header)
        assert spec.brand_id is not None
        if brand_header and brand_header != spec.brand_id:
            return AuthRefusal("BRAND_SCOPE_MISMATCH", "X-Brand-Id")
        return Caller(api_key, spec.brand_id)

    # -- triggers --------------------------------------------------------------------

    def trigger(self, caller: Caller, trigger_event_id: str) -> Trigger | None:
        """The trigger if it exists *for this brand*: another brand's is simply not found."""
        trigger = self.triggers.get(trigger_event_id)
        if trigger is None or not trigger.visible_to(caller.brand_id):
            return None
        return trigger

    def visible_triggers(self, caller: Caller) -> list[Trigger]:
        return [t for t in self.triggers.values() if t.visible_to(caller.brand_id)]

    def put_trigger(self, spec: TriggerSpec) -> Trigger:
        """Create or replace a trigger (admin, or the API's create)."""
        stamp = iso_utc(self.clock())
        existing = self.triggers.get(spec.trigger_event_id)
        created = existing.created_at if existing is not None else stamp
        trigger = Trigger(spec, created, stamp)
        self.triggers[spec.trigger_event_id] = trigger
        return trigger

    # -- runs ------------------------------------------------------------------------

    def start_runs(
        self, caller: Caller, trigger: Trigger, payload: Mapping[str, Any], now: float
    ) -> tuple[str, list[Run]]:
        """One trigger instance and one run per published automation."""
        instance_id = new_id("tin_")
        email = payload.get("email")
        recipient = email if isinstance(email, str) else None
        started: list[Run] = []
        for automation in trigger.published:
            run = Run(
                seq=len(self.run_order),
                run_id=new_id("run_"),
                brand_id=caller.brand_id,
                automation=automation,
                trigger_event_id=trigger.spec.trigger_event_id,
                trigger_instance_id=instance_id,
                recipient_email=recipient,
                plan=RunPlan(
                    created_at=now,
                    pending_seconds=automation.pending_seconds,
                    duration_seconds=automation.duration_ms / 1000.0,
                    outcome=automation.outcome,
                    error=automation.error if automation.outcome == "failed" else None,
                    nodes=automation.nodes,
                ),
            )
            self.runs[run.run_id] = run
            self.run_order.append(run)
            started.append(run)
        return instance_id, started

    def run(self, caller: Caller, run_id: str) -> Run | None:
        run = self.runs.get(run_id)
        if run is None or run.brand_id != caller.brand_id:
            return None
        return run

    def cancel(self, run: Run, now: float, reason: str | None) -> tuple[bool, str]:
        """Cancel a live run: ``(done, previous status)``; a finished run stays as it is."""
        previous = run.status(now)
        if previous not in ("pending", "running"):
            return False, previous
        run.canceled_at = now
        run.cancel_reason = reason
        return True, previous

    def list_runs(
        self, caller: Caller, where: RunFilter, limit: int, before_seq: int | None, now: float
    ) -> tuple[list[Run], bool]:
        """Newest first, at most ``limit``, only runs older than ``before_seq``; + has-more."""
        order = self.run_order
        index = len(order) - 1 if before_seq is None else min(before_seq, len(order)) - 1
        found: list[Run] = []
        while index >= 0:
            run = order[index]
            index -= 1
            created = run.plan.created_at
            if where.from_ is not None and created < where.from_:
                break  # runs are in fire order: everything further back is older still
            if run.brand_id != caller.brand_id or not _matches(run, where, now):
                continue
            if len(found) == limit:
                return found, True
            found.append(run)
        return found, False


def _matches(run: Run, where: RunFilter, now: float) -> bool:
    if where.automation_id is not None and run.automation.automation_id != where.automation_id:
        return False
    if where.trigger_event_id is not None and run.trigger_event_id != where.trigger_event_id:
        return False
    if (
        where.trigger_instance_id is not None
        and run.trigger_instance_id != where.trigger_instance_id
    ):
        return False
    if where.recipient_email is not None and (
        run.recipient_email is None or run.recipient_email.lower() != where.recipient_email.lower()
    ):
        return False
    if where.mode is not None and run.mode != where.mode:
        return False
    if where.to is not None and run.plan.created_at > where.to:
        return False
    return where.statuses is None or run.status(now) in where.statuses
