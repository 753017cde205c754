"""Injected failures: what a real network and a real Brew do to a client on a bad day.

Settings (seed ``faults:`` and ``PUT /_sim/faults``; a PUT replaces them all)::

    seed: 7                 # RNG seed for the rates below: the same seed, the same sequence
    fire:                   # POST …/fire
      latencyMs: 20         # added to every request in this scope
      errorRate: 0.1        # share of requests answered with an injected 5xx (work not done)
      errorStatuses: [500, 502, 503]
      errorBody: envelope   # envelope | html | empty
      retryAfter: 2         # Retry-After seconds on injected 5xx (omit for none)
      rateLimitRate: 0.0    # share answered 429 RATE_LIMITED (a burst)
      rateLimitRetryAfter: 1
      hangRate: 0.0         # share held open for hangSeconds before any work
      hangSeconds: 60
      resetRate: 0.0        # share processed, then the connection dropped unanswered
      next:                 # scripted: the next requests, in order, before any rate applies
        - {fault: error, status: 503, count: 3, retryAfter: 1}
        - {fault: reset}
    read: {...}             # every other /api request: runs, triggers, the ready check

Step ``fault`` values: ``error`` (5xx, nothing done), ``errorAfterWork`` (the work is done,
then a 5xx), ``rateLimit`` (429), ``hang`` (held ``seconds`` before the work; a client
that gives up leaves nothing done), ``hangAfterWork`` (the work is done, then held),
``reset`` (the work is done, then the connection is dropped with no answer — the
"unknown outcome" case), ``latency`` (``ms`` added), ``none`` (passes; a gap in a script).
Each step has ``count`` (default 1) and the optional ``status``, ``retryAfter``, ``body``,
``seconds``, ``ms`` of its kind. Deciding consumes the script and the RNG; nothing
here does I/O.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brew_bridge.sim.brew.specs import (
    SpecError,
    get_number,
    get_str,
    reject_unknown,
    require_mapping,
)

__all__ = [
    "FAULT_KINDS",
    "SCOPES",
    "FaultAction",
    "FaultRule",
    "Faults",
    "parse_faults",
]

SCOPES = ("fire", "read")
FAULT_KINDS = frozenset(
    {"error", "errorAfterWork", "rateLimit", "hang", "hangAfterWork", "reset", "latency", "none"}
)
_ERROR_STATUSES = frozenset({500, 502, 503, 504})
_BODIES = frozenset({"envelope", "html", "empty"})
_RULE_KEYS = frozenset(
    {
        "latencyMs",
        "errorRate",
        "errorStatuses",
        "errorBody",
        "retryAfter",
        "rateLimitRate",
        "rateLimitRetryAfter",
        "hangRate",
        "hangSeconds",
        "resetRate",
        "next",
    }
)
_STEP_KEYS = frozenset({"fault", "count", "status", "retryAfter", "body", "seconds", "ms"})


@dataclass(frozen=True)
class FaultAction:
    """What to do to one request. ``latency_ms`` applies on top of any ``kind``."""

    kind: str  # one of FAULT_KINDS
    status: int = 503
    retry_after: int | None = None
    body: str = "envelope"
    seconds: float = 60.0
    latency_ms: float = 0.0


_PASS = FaultAction("none")


@dataclass
class _Step:
    action: FaultAction
    remaining: int


@dataclass
class FaultRule:
    """The fault settings of one scope."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    error_body: str = "envelope"
    retry_after: int | None = None
    rate_limit_rate: float = 0.0
    rate_limit_retry_after: int = 1
    hang_rate: float = 0.0
    hang_seconds: float = 60.0
    reset_rate: float = 0.0
    script: deque[_Step] = field(default_factory=deque)

    @property
    def idle(self) -> bool:
        """Nothing to inject: the hot path skips the RNG entirely."""
        return not self.script and self.latency_ms == 0 and self._rates_total() == 0

    def _rates_total(self) -> float:
        return self.error_rate + self.rate_limit_rate + self.hang_rate + self.reset_rate

    def decide(self, rng: random.Random) -> FaultAction:
        if self.script:
            step = self.script[0]
            step.remaining -= 1
            if step.remaining <= 0:
                self.script.popleft()
            action = step.action
            return _with_latency(action, self.latency_ms) if self.latency_ms else action
        if self._rates_total() == 0:
            return FaultAction("latency", latency_ms=self.latency_ms)
        draw = rng.random()
        kind = "latency"
        for rate, name in (
            (self.error_rate, "error"),
            (self.rate_limit_rate, "rateLimit"),
            (self.hang_rate, "hang"),
            (self.reset_rate, "reset"),
        ):
            if draw < rate:
                kind = name
                break
            draw -= rate
        if kind == "error":
            status = rng.choice(self.error_statuses)
            return FaultAction(
                "error", status, self.retry_after, self.error_body, latency_ms=self.latency_ms
            )
        if kind == "rateLimit":
            return FaultAction(
                "rateLimit", 429, self.rate_limit_retry_after, latency_ms=self.latency_ms
            )
        if kind == "hang":
            return FaultAction("hang", seconds=self.hang_seconds, latency_ms=self.latency_ms)
        return FaultAction(kind, latency_ms=self.latency_ms)


def _with_latency(action: FaultAction, latency_ms: float) -> FaultAction:
    return FaultAction(
        action.kind,
        action.status,
        action.retry_after,
        action.body,
        action.seconds,
        action.latency_ms + latency_ms,
    )


class Faults:
    """The fault settings of every scope, with their RNGs and scripts."""

    def __init__(self, rules: Mapping[str, FaultRule] | None = None, seed: int = 0) -> None:
        self.seed = seed
        self.rules = {scope: FaultRule() for scope in SCOPES}
        self.rules.update(rules or {})
        # One RNG per scope, so reads interleaving with fires do not shift a fire sequence.
        self._rngs = {scope: random.Random(f"{seed}:{scope}") for scope in SCOPES}

    def decide(self, scope: str) -> FaultAction:
        """The fault (or none) for the next request in ``scope``."""
        rule = self.rules[scope]
        if rule.idle:
            return _PASS
        return rule.decide(self._rngs[scope])


def _int_or_none(spec: Mapping[str, Any], key: str, path: str) -> int | None:
    if spec.get(key) is None:
        return None
    return int(get_number(spec, key, path, 0, minimum=0, maximum=86400))


def _status(value: object, path: str) -> int:
    if isinstance(value, bool) or value not in _ERROR_STATUSES:
        raise SpecError(path, f"{value!r} is not an injectable status", "use 500, 502, 503 or 504")
    assert isinstance(value, int)
    return value


def _body(spec: Mapping[str, Any], key: str, path: str) -> str:
    body = get_str(spec, key, path, "envelope")
    if body not in _BODIES:
        raise SpecError(f"{path}.{key}", f"unknown body {body!r}", "use envelope, html or empty")
    assert body is not None
    return body


def _parse_step(raw: object, path: str) -> _Step:
    spec = require_mapping(raw, path)
    reject_unknown(spec, _STEP_KEYS, path)
    kind = spec.get("fault")
    if kind not in FAULT_KINDS:
        raise SpecError(
            f"{path}.fault", f"unknown fault {kind!r}", f"use one of {sorted(FAULT_KINDS)}"
        )
    count = int(get_number(spec, "count", path, 1, minimum=1))
    default_status = 429 if kind == "rateLimit" else 503
    status = (
        default_status
        if kind == "rateLimit"
        else _status(spec.get("status", default_status), f"{path}.status")
    )
    retry_after = _int_or_none(spec, "retryAfter", path)
    if kind == "rateLimit" and retry_after is None:
        retry_after = 1
    action = FaultAction(
        kind=str(kind),
        status=status,
        retry_after=retry_after,
        body=_body(spec, "body", path),
        seconds=get_number(spec, "seconds", path, 60.0),
        latency_ms=get_number(spec, "ms", path, 0.0) if kind == "latency" else 0.0,
    )
    return _Step(action, count)


def _parse_rule(raw: object, path: str) -> FaultRule:
    spec = require_mapping(raw, path)
    reject_unknown(spec, _RULE_KEYS, path)
    statuses_raw = spec.get("errorStatuses", [500, 502, 503])
    if not isinstance(statuses_raw, list) or not statuses_raw:
        raise SpecError(f"{path}.errorStatuses", "expected a non-empty list", "e.g. [500, 503]")
    statuses = tuple(_status(s, f"{path}.errorStatuses[{i}]") for i, s in enumerate(statuses_raw))
    steps_raw = spec.get("next", [])
    if not isinstance(steps_raw, list):
        raise SpecError(f"{path}.next", "expected a list of steps", "e.g. [{fault: reset}]")
    rule = FaultRule(
        latency_ms=get_number(spec, "latencyMs", path, 0.0),
        error_rate=get_number(spec, "errorRate", path, 0.0, maximum=1.0),
        error_statuses=statuses,
        error_body=_body(spec, "errorBody", path),
        retry_after=_int_or_none(spec, "retryAfter", path),
        rate_limit_rate=get_number(spec, "rateLimitRate", path, 0.0, maximum=1.0),
        rate_limit_retry_after=int(
            get_number(spec, "rateLimitRetryAfter", path, 1, minimum=1, maximum=86400)
        ),
        hang_rate=get_number(spec, "hangRate", path, 0.0, maximum=1.0),
        hang_seconds=get_number(spec, "hangSeconds", path, 60.0),
        reset_rate=get_number(spec, "resetRate", path, 0.0, maximum=1.0),
        script=deque(_parse_step(s, f"{path}.next[{i}]") for i, s in enumerate(steps_raw)),
    )
    if rule._rates_total() > 1.0:
        raise SpecError(path, "the rates add up to more than 1", "lower errorRate/hangRate/...")
    return rule


def parse_faults(raw: object, path: str = "faults") -> Faults:
    """Read fault settings (seed ``faults:`` or a ``PUT /_sim/faults`` body)."""
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, frozenset({"seed", *SCOPES}), path)
    seed = int(get_number(spec, "seed", path, 0))
    rules = {
        scope: _parse_rule(spec[scope], f"{path}.{scope}") for scope in SCOPES if scope in spec
    }
    return Faults(rules, seed)
