"""The Pinkfish simulator's starting state: triggers, how their runs go, keys and faults.

Read from a YAML seed file (``brew-bridge sim --target pinkfish --seed FILE``) or a
mapping (tests, the admin routes, ``POST /_sim/reset`` with a body). The format, with
every default::

    requestLogSize: 100000            # GET /_sim/requests keeps the newest this many
    allowAnyKey: true                 # default: true when there is no keys section
    triggers:
      trg_hello:                      # the triggerId of POST /ext/triggers/{triggerId}
        automationId: d831ue4rccbc73knbi80   # default: derived from the trigger id
        automationName: Hello World   # default: the trigger id
        automationVersion: 3          # default 1 (also every step's stepVersion)
        steps: 1                      # a count (Step 1, Step 2, ...) or a list of names
        durationMs: 1000              # fire -> terminal status
        pendingMs: 200                # default min(200, durationMs / 4)
        outcome: COMPLETE             # COMPLETE | FAILED | TIMEOUT
        outcomes: [COMPLETE, FAILED]  # instead: one per fire, in order, cycled
        probabilities: {COMPLETE: 0.9, TIMEOUT: 0.1}  # or: drawn per fire (sum 1) ...
        randomSeed: 0                 # ... from this seed: the same seed, the same draws
        stuck: false                  # runs stay RUNNING (in step 1) until unstuck
        designatedOutput: {fileName: poem.txt, mimeType: text/plain, size: 117}
        account: null                 # null: every account may fire it
    keys:
      pf_test_key: {account: acme, revoked: false}   # account default: its own
    faults: {}                        # the Brew simulator's faults: scopes fire, read

A problem raises :class:`SpecError` (mappings) or :class:`ConfigError` (files, with the
line), naming the key path and the fix.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brew_bridge.sim.brew.faults import parse_faults
from brew_bridge.sim.brew.seed import load_yaml_seed
from brew_bridge.sim.brew.specs import (
    SpecError,
    get_bool,
    get_number,
    get_str,
    reject_unknown,
    require_mapping,
)
from brew_bridge.sim.pinkfish.ids import automation_id_for
from brew_bridge.sim.pinkfish.runclock import OUTCOMES

__all__ = [
    "DesignatedOutput",
    "KeySpec",
    "Seed",
    "TriggerSpec",
    "account_for_key",
    "load_seed",
    "parse_key",
    "parse_seed",
    "parse_trigger",
]

_SEED_KEYS = frozenset({"requestLogSize", "allowAnyKey", "triggers", "keys", "faults"})
_TRIGGER_KEYS = frozenset(
    {
        "automationId",
        "automationName",
        "automationVersion",
        "steps",
        "durationMs",
        "pendingMs",
        "outcome",
        "outcomes",
        "probabilities",
        "randomSeed",
        "stuck",
        "designatedOutput",
        "account",
    }
)
_OUTPUT_KEYS = frozenset({"fileName", "mimeType", "size"})
_KEY_KEYS = frozenset({"account", "revoked"})
_MAX_STEPS = 100


@dataclass(frozen=True)
class DesignatedOutput:
    """The file a trigger designates as its output (the results' ``designatedOutput``)."""

    file_name: str
    mime_type: str = "text/plain"
    size: int = 117


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger, the automation it runs, and how its runs go."""

    trigger_id: str
    automation_id: str
    automation_name: str
    automation_version: int = 1
    steps: tuple[str, ...] = ("Step 1",)
    duration_ms: float = 1000.0
    pending_ms: float | None = None
    outcome: str = "COMPLETE"
    outcomes: tuple[str, ...] | None = None
    probabilities: Mapping[str, float] | None = None
    random_seed: int = 0
    stuck: bool = False
    designated_output: DesignatedOutput | None = None
    account: str | None = None

    @property
    def pending_seconds(self) -> float:
        pending = (
            self.pending_ms if self.pending_ms is not None else min(200.0, self.duration_ms / 4)
        )
        return min(pending, self.duration_ms) / 1000.0


@dataclass(frozen=True)
class KeySpec:
    """An API key: the account whose triggers and runs it reaches."""

    account: str
    revoked: bool = False


@dataclass(frozen=True)
class Seed:
    """Everything the simulator starts from (and returns to on ``POST /_sim/reset``)."""

    request_log_size: int = 100_000
    allow_any_key: bool = True
    triggers: Mapping[str, TriggerSpec] | None = None
    keys: Mapping[str, KeySpec] | None = None
    faults: Mapping[str, Any] | None = None  # raw; Faults are stateful, built fresh on reset


def account_for_key(api_key: str) -> str:
    """The account of a key the seed does not list: stable, and reveals no key."""
    return "acct_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _name(value: object, path: str, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise SpecError(path, f"expected a string of 1..{max_len} characters", "write a name")
    return value


def _outcome(value: object, path: str) -> str:
    if value not in OUTCOMES:
        raise SpecError(path, f"unknown outcome {value!r}", f"use one of {', '.join(OUTCOMES)}")
    assert isinstance(value, str)
    return value


def _steps(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_STEPS:
        return tuple(f"Step {i}" for i in range(1, value + 1))
    if isinstance(value, list) and 1 <= len(value) <= _MAX_STEPS:
        return tuple(_name(v, f"{path}[{i}]", 200) for i, v in enumerate(value))
    raise SpecError(path, "expected a step count or a list of names", "e.g. 2 or [Fetch, Sum]")


def _outcomes(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(path, "expected a non-empty list", "e.g. [COMPLETE, FAILED]")
    return tuple(_outcome(v, f"{path}[{i}]") for i, v in enumerate(value))


def _probabilities(value: object, path: str) -> dict[str, float]:
    spec = require_mapping(value, path)
    weights = {
        _outcome(name, f"{path}.{name}"): get_number(spec, name, path, 0.0, maximum=1.0)
        for name in spec
    }
    if not math.isclose(sum(weights.values()), 1.0, abs_tol=1e-9):
        raise SpecError(path, "the probabilities do not add up to 1", "e.g. {COMPLETE: 0.9, ...}")
    return weights


def _designated(value: object, path: str) -> DesignatedOutput:
    spec = require_mapping(value, path)
    reject_unknown(spec, _OUTPUT_KEYS, path)
    return DesignatedOutput(
        file_name=_name(spec.get("fileName"), f"{path}.fileName", 200),
        mime_type=get_str(spec, "mimeType", path, "text/plain") or "text/plain",
        size=int(get_number(spec, "size", path, 117)),
    )


def parse_trigger(trigger_id: str, raw: object, path: str) -> TriggerSpec:
    _name(trigger_id, path, 256)
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _TRIGGER_KEYS, path)
    if "outcomes" in spec and "probabilities" in spec:
        raise SpecError(path, "outcomes and probabilities together", "keep one of them")
    pending = spec.get("pendingMs")
    output = spec.get("designatedOutput")
    designated = None if output is None else _designated(output, f"{path}.designatedOutput")
    return TriggerSpec(
        trigger_id=trigger_id,
        automation_id=_name(
            spec.get("automationId", automation_id_for(trigger_id)), f"{path}.automationId", 64
        ),
        automation_name=get_str(spec, "automationName", path, trigger_id) or trigger_id,
        automation_version=int(get_number(spec, "automationVersion", path, 1, minimum=1)),
        steps=_steps(spec.get("steps", 1), f"{path}.steps"),
        duration_ms=get_number(spec, "durationMs", path, 1000.0),
        pending_ms=None if pending is None else get_number(spec, "pendingMs", path, 0.0),
        outcome=_outcome(spec.get("outcome", "COMPLETE"), f"{path}.outcome"),
        outcomes=_outcomes(spec["outcomes"], f"{path}.outcomes") if "outcomes" in spec else None,
        probabilities=(
            _probabilities(spec["probabilities"], f"{path}.probabilities")
            if "probabilities" in spec
            else None
        ),
        random_seed=int(get_number(spec, "randomSeed", path, 0)),
        stuck=get_bool(spec, "stuck", path, False),
        designated_output=designated,
        account=get_str(spec, "account", path, None),
    )


def parse_key(api_key: str, raw: object, path: str) -> KeySpec:
    _name(api_key, path, 256)
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _KEY_KEYS, path)
    return KeySpec(
        account=get_str(spec, "account", path, None) or account_for_key(api_key),
        revoked=get_bool(spec, "revoked", path, False),
    )


def parse_seed(raw: object, path: str = "seed") -> Seed:
    """Read a seed mapping; raises :class:`SpecError` on the first problem."""
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _SEED_KEYS, path)
    triggers_raw = require_mapping(spec.get("triggers") or {}, f"{path}.triggers")
    keys_raw = spec.get("keys")
    keys_map = require_mapping(keys_raw or {}, f"{path}.keys")
    faults_raw = spec.get("faults") or {}
    parse_faults(faults_raw, f"{path}.faults")  # validate now; built fresh on each reset
    return Seed(
        request_log_size=int(get_number(spec, "requestLogSize", path, 100_000, minimum=1)),
        allow_any_key=get_bool(spec, "allowAnyKey", path, keys_raw is None),
        triggers={
            str(tid): parse_trigger(str(tid), t, f"{path}.triggers.{tid}")
            for tid, t in triggers_raw.items()
        },
        keys={str(k): parse_key(str(k), v, f"{path}.keys.{k}") for k, v in keys_map.items()},
        faults=require_mapping(faults_raw, f"{path}.faults"),
    )


def load_seed(path: str | Path) -> Seed:
    """Read a YAML seed file; raises :class:`ConfigError` with the file, line and fix."""
    return load_yaml_seed(path, parse_seed)
