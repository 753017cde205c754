"""The simulator's starting state: triggers, what they start, keys, limits and faults.

Read from a YAML seed file (``brew-bridge sim --seed FILE``) or a mapping (tests, the
admin endpoints, ``POST /_sim/reset`` with a body). The format, with every default::

    apiShape: "9.3"                   # "9.3" | "10"
    idempotencyWindowSeconds: 86400
    requestLogSize: 100000            # GET /_sim/requests keeps the newest this many
    allowAnyBrewKey: true             # default: true when there is no keys section
    triggers:
      tri_welcome:
        title: User signed up         # default: the id
        description: ...              # optional
        provider: brew_api            # brew_api | clerk | stripe | ...
        brandId: null                 # null: visible to every brand
        payloadSchema: {type: object, fields: [{key: email, type: string, required: true}]}
        automations:
          - automationId: auto_welcome
            name: Welcome email       # default: the id
            published: true
            outcome: completed        # completed | failed | partially_completed
            durationMs: 1000          # fire -> terminal status
            pendingMs: 100            # default min(200, durationMs / 4)
            error: "..."              # the run's error when outcome is failed
            versionId: av_1
            primaryFromAddress: hello@example.com
            nodes: [{nodeId: trg, nodeName: On signup, nodeType: trigger}, ...]
    keys:
      brew_test_key: {brandId: brand_1, scopes: [all], revoked: false}
      brew_org_key: {brands: [brand_1, brand_2]}   # organization key: X-Brand-Id required
    limits:
      automation.runs.write: {limit: 60, windowSeconds: 60}
    faults: {}                        # see faults.py

A problem raises :class:`SpecError` (mappings) or :class:`ConfigError` (files, with the
line), naming the key path and the fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from brew_bridge.errors import ConfigError, ConfigProblem
from brew_bridge.sim.brew.faults import parse_faults
from brew_bridge.sim.brew.idempotency import DEFAULT_WINDOW_SECONDS
from brew_bridge.sim.brew.ratewindow import DEFAULT_POLICIES, Policy
from brew_bridge.sim.brew.runclock import DEFAULT_NODES, OUTCOMES, NodeSpec
from brew_bridge.sim.brew.specs import (
    SpecError,
    get_bool,
    get_number,
    get_str,
    reject_unknown,
    require_mapping,
)
from brew_bridge.wire.payload_schema import EMAIL_RULE, schema_problems

__all__ = [
    "API_SHAPES",
    "AutomationSpec",
    "KeySpec",
    "Seed",
    "TriggerSpec",
    "brand_for_key",
    "line_of",
    "load_seed",
    "load_yaml_seed",
    "parse_automation",
    "parse_key",
    "parse_limits",
    "parse_seed",
    "parse_trigger",
    "parse_yaml",
]

T = TypeVar("T")

API_SHAPES = ("9.3", "10")
PROVIDERS = frozenset(
    {
        "brew_api",
        "clerk",
        "stripe",
        "shopify",
        "stytch",
        "supabase",
        "workos",
        "framer",
        "revenuecat",
        "custom",
    }
)
NODE_TYPES = frozenset({"trigger", "wait", "filter", "split", "sendEmail"})
_SEED_KEYS = frozenset(
    {
        "apiShape",
        "idempotencyWindowSeconds",
        "requestLogSize",
        "allowAnyBrewKey",
        "triggers",
        "keys",
        "limits",
        "faults",
    }
)
_TRIGGER_KEYS = frozenset(
    {"title", "description", "provider", "brandId", "payloadSchema", "automations"}
)
_AUTOMATION_KEYS = frozenset(
    {
        "automationId",
        "name",
        "published",
        "outcome",
        "durationMs",
        "pendingMs",
        "error",
        "versionId",
        "primaryFromAddress",
        "nodes",
    }
)
_KEY_KEYS = frozenset({"brandId", "brands", "scopes", "revoked"})
_DEFAULT_ERROR = "Send failed: the recipient's mail server refused the message (simulated)."


@dataclass(frozen=True)
class AutomationSpec:
    """One automation attached to a trigger, and how its runs go."""

    automation_id: str
    name: str
    published: bool = True
    outcome: str = "completed"
    duration_ms: float = 1000.0
    pending_ms: float | None = None
    error: str = _DEFAULT_ERROR
    version_id: str = "av_1"
    primary_from_address: str | None = None
    nodes: tuple[NodeSpec, ...] = DEFAULT_NODES

    @property
    def pending_seconds(self) -> float:
        pending = (
            self.pending_ms if self.pending_ms is not None else min(200.0, self.duration_ms / 4)
        )
        return min(pending, self.duration_ms) / 1000.0


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger as the seed or an admin PUT describes it."""

    trigger_event_id: str
    title: str
    payload_schema: Mapping[str, Any]
    automations: tuple[AutomationSpec, ...] = ()
    description: str | None = None
    provider: str = "brew_api"
    brand_id: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """An API key: brand-scoped (``brand_id``) or organization-scoped (``brands``)."""

    brand_id: str | None
    brands: tuple[str, ...] | None
    scopes: tuple[str, ...] = ("all",)
    revoked: bool = False


@dataclass(frozen=True)
class Seed:
    """Everything the simulator starts from (and returns to on ``POST /_sim/reset``)."""

    api_shape: str | None = None
    idempotency_window_seconds: float = DEFAULT_WINDOW_SECONDS
    request_log_size: int = 100_000
    allow_any_brew_key: bool = True
    triggers: Mapping[str, TriggerSpec] | None = None
    keys: Mapping[str, KeySpec] | None = None
    limits: Mapping[str, Policy] | None = None
    faults: Mapping[str, Any] | None = None  # raw; Faults are stateful, built fresh on reset


def brand_for_key(api_key: str) -> str:
    """The brand a key without a configured brand acts for: stable, and reveals no key."""
    return "brand_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _non_empty(value: object, path: str, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise SpecError(path, f"expected a string of 1..{max_len} characters", "write an id")
    return value


def _parse_node(raw: object, path: str) -> NodeSpec:
    spec = require_mapping(raw, path)
    reject_unknown(spec, frozenset({"nodeId", "nodeName", "nodeType"}), path)
    node_type = spec.get("nodeType")
    if node_type not in NODE_TYPES:
        raise SpecError(f"{path}.nodeType", f"unknown {node_type!r}", f"use {sorted(NODE_TYPES)}")
    node_id = _non_empty(spec.get("nodeId"), f"{path}.nodeId", 64)
    return NodeSpec(node_id, get_str(spec, "nodeName", path, node_id) or node_id, str(node_type))


def parse_automation(raw: object, path: str) -> AutomationSpec:
    spec = require_mapping(raw, path)
    reject_unknown(spec, _AUTOMATION_KEYS, path)
    automation_id = _non_empty(spec.get("automationId"), f"{path}.automationId", 64)
    outcome = spec.get("outcome", "completed")
    if outcome not in OUTCOMES:
        raise SpecError(
            f"{path}.outcome", f"unknown outcome {outcome!r}", f"use {sorted(OUTCOMES)}"
        )
    nodes_raw = spec.get("nodes")
    nodes: tuple[NodeSpec, ...] = DEFAULT_NODES
    if nodes_raw is not None:
        if not isinstance(nodes_raw, list) or not nodes_raw:
            raise SpecError(f"{path}.nodes", "expected a non-empty list", "list the flow's nodes")
        nodes = tuple(_parse_node(n, f"{path}.nodes[{i}]") for i, n in enumerate(nodes_raw))
    pending = spec.get("pendingMs")
    return AutomationSpec(
        automation_id=automation_id,
        name=get_str(spec, "name", path, automation_id) or automation_id,
        published=get_bool(spec, "published", path, True),
        outcome=str(outcome),
        duration_ms=get_number(spec, "durationMs", path, 1000.0),
        pending_ms=None if pending is None else get_number(spec, "pendingMs", path, 0.0),
        error=get_str(spec, "error", path, _DEFAULT_ERROR) or _DEFAULT_ERROR,
        version_id=get_str(spec, "versionId", path, "av_1") or "av_1",
        primary_from_address=get_str(spec, "primaryFromAddress", path, None),
        nodes=nodes,
    )


def parse_trigger(trigger_event_id: str, raw: object, path: str) -> TriggerSpec:
    _non_empty(trigger_event_id, path, 256)
    spec = require_mapping(raw, path)
    reject_unknown(spec, _TRIGGER_KEYS, path)
    provider = get_str(spec, "provider", path, "brew_api")
    if provider not in PROVIDERS:
        raise SpecError(f"{path}.provider", f"unknown provider {provider!r}", "use brew_api")
    schema = spec.get("payloadSchema")
    problems = schema_problems(schema)
    if provider != "brew_api":  # integration triggers need not carry an email field
        problems = [p for p in problems if p != EMAIL_RULE]
    if problems:
        raise SpecError(f"{path}.payloadSchema", "; ".join(problems), "fix the payloadSchema")
    assert isinstance(schema, Mapping)
    automations_raw = spec.get("automations", [])
    if not isinstance(automations_raw, list):
        raise SpecError(f"{path}.automations", "expected a list", "list the automations")
    automations = tuple(
        parse_automation(a, f"{path}.automations[{i}]") for i, a in enumerate(automations_raw)
    )
    return TriggerSpec(
        trigger_event_id=trigger_event_id,
        title=get_str(spec, "title", path, trigger_event_id) or trigger_event_id,
        payload_schema=schema,
        automations=automations,
        description=get_str(spec, "description", path, None),
        provider=str(provider),
        brand_id=get_str(spec, "brandId", path, None),
    )


def _str_list(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(path, "expected a list of strings", "e.g. [all]")
    return tuple(value)


def parse_key(api_key: str, raw: object, path: str) -> KeySpec:
    _non_empty(api_key, path, 256)
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _KEY_KEYS, path)
    brands = None
    if spec.get("brands") is not None:
        if "brandId" in spec:
            raise SpecError(path, "brandId and brands together", "brandId for a brand key")
        brands = _str_list(spec["brands"], f"{path}.brands")
        brand_id = None
    else:
        brand_id = get_str(spec, "brandId", path, None) or brand_for_key(api_key)
    return KeySpec(
        brand_id=brand_id,
        brands=brands,
        scopes=_str_list(spec.get("scopes", ["all"]), f"{path}.scopes"),
        revoked=get_bool(spec, "revoked", path, False),
    )


def parse_limits(raw: object, path: str) -> dict[str, Policy]:
    spec = require_mapping(raw if raw is not None else {}, path)
    policies: dict[str, Policy] = {}
    for name, rule_raw in spec.items():
        at = f"{path}.{name}"
        if name not in DEFAULT_POLICIES:
            raise SpecError(at, "unknown policy", f"use one of {sorted(DEFAULT_POLICIES)}")
        rule = require_mapping(rule_raw, at)
        reject_unknown(rule, frozenset({"limit", "windowSeconds"}), at)
        current = DEFAULT_POLICIES[name]
        limit = get_number(rule, "limit", at, current.limit, minimum=1)
        window = get_number(rule, "windowSeconds", at, current.window_seconds, minimum=0.001)
        policies[name] = Policy(int(limit), window)
    return policies


def parse_seed(raw: object, path: str = "seed") -> Seed:
    """Read a seed mapping; raises :class:`SpecError` on the first problem."""
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _SEED_KEYS, path)
    shape = spec.get("apiShape")
    if shape is not None:
        shape = str(shape)
        if shape not in API_SHAPES:
            raise SpecError(f"{path}.apiShape", f"unknown shape {shape!r}", 'use "9.3" or "10"')
    triggers_raw = require_mapping(spec.get("triggers") or {}, f"{path}.triggers")
    keys_raw = spec.get("keys")
    keys_map = require_mapping(keys_raw or {}, f"{path}.keys")
    faults_raw = spec.get("faults") or {}
    parse_faults(faults_raw, f"{path}.faults")  # validate now; built fresh on each reset
    return Seed(
        api_shape=shape,
        idempotency_window_seconds=get_number(
            spec, "idempotencyWindowSeconds", path, DEFAULT_WINDOW_SECONDS, minimum=0.001
        ),
        request_log_size=int(get_number(spec, "requestLogSize", path, 100_000, minimum=1)),
        allow_any_brew_key=get_bool(spec, "allowAnyBrewKey", path, keys_raw is None),
        triggers={
            str(tid): parse_trigger(str(tid), t, f"{path}.triggers.{tid}")
            for tid, t in triggers_raw.items()
        },
        keys={str(k): parse_key(str(k), v, f"{path}.keys.{k}") for k, v in keys_map.items()},
        limits=parse_limits(spec.get("limits"), f"{path}.limits"),
        faults=require_mapping(faults_raw, f"{path}.faults"),
    )


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(document: yaml.Node | None, key_path: str) -> int | None:
    """The 1-based line of ``key_path`` (``a.b[0].c``) in a composed YAML document."""
    node = document
    line = None
    for name, index in _SEGMENT.findall(key_path.removeprefix("seed.").removeprefix("seed")):
        if node is None:
            break
        if isinstance(node, yaml.MappingNode) and name:
            found = next((v for k, v in node.value if getattr(k, "value", None) == name), None)
            if found is None:
                break
            line = found.start_mark.line + 1
            node = found
        elif isinstance(node, yaml.SequenceNode) and index:
            position = int(index)
            if position >= len(node.value):
                break
            node = node.value[position]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_seed(path: str | Path) -> Seed:
    """Read a YAML seed file; raises :class:`ConfigError` with the file, line and fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(file, "-", f"cannot read the seed file: {exc}", "check the --seed path")]
        ) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = ConfigProblem(file, "-", f"not valid YAML: {exc}", "fix the syntax", line)
        raise ConfigError([problem]) from exc
    return parse_yaml(file, text, raw, parse_seed)


def parse_yaml(file: str, text: str, raw: object, parse: Callable[[object], T]) -> T:
    """``parse`` of the YAML document ``text`` (read as ``raw``); its :class:`SpecError`
    becomes a :class:`ConfigError` naming the file and the key's line."""
    try:
        return parse(raw)
    except SpecError as exc:
        line = line_of(yaml.compose(text), exc.path)
        raise ConfigError([ConfigProblem(file, exc.path, exc.problem, exc.fix, line)]) from exc


def load_yaml_seed(path: str | Path, parse: Callable[[object], T]) -> T:
    """Read a YAML seed file with ``parse`` (the Pinkfish and Boring Marketing seeds);
    raises :class:`ConfigError` with the file, line and fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = ConfigProblem(file, "-", f"cannot read the seed: {exc}", "check --seed", line)
        raise ConfigError([problem]) from exc
    return parse_yaml(file, text, raw, parse)
