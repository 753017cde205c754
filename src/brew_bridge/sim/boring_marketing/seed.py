"""The Boring Marketing simulator's starting state: brands, keys, pipelines and faults.

Read from a YAML seed file (``brew-bridge sim --target boring-marketing --seed FILE``)
or a mapping (tests, the admin routes, ``POST /_sim/reset`` with a body). The format,
with every default::

    requestLogSize: 100000            # GET /_sim/requests keeps the newest this many
    allowAnyKey: true                 # default: true when there is no keys section
                                      # (then any key starting bm_ is valid)
    allowAnyBrand: true               # default: true when there is no brands section
                                      # (then every brand id exists)
    randomSeed: 0                     # the failureRate draws: same seed, same draws
    brands:
      4a6e0c1e-...: {name: Acme, domain: acme.com}
    keys:
      bm_test_key: {brands: [4a6e0c1e-...], revoked: false}   # brands: null = every brand
    pipelines:                        # by endpoint; an endpoint left out gets the defaults
      analyze:
        stages: [brand_enrichment, ...]   # default: the endpoint's (pipelines.py)
        queuedMs: 200                 # accepted -> running
        stageMs: 1000                 # every stage; or per stage {evidence_collection: 5000}
                                      # (a pipeline without stages runs for one stageMs)
        outcome: done                 # done | failed | stuck (runs forever in stage 1)
        outcomes: [stuck, done]       # instead: one per fire, in order, cycled
        failureRate: 0.0              # else a share of the runs fail, drawn from randomSeed
        failStage: evidence_collection   # where failed runs fail (default: the last stage)
        error: "DataForSEO rate limit exceeded — retry in 60 seconds"
    faults: {}                        # the Brew simulator's faults: scopes fire, read

A problem raises :class:`SpecError` (mappings) or :class:`ConfigError` (files, with the
line), naming the key path and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brew_bridge.sim.boring_marketing.pipelines import ENDPOINTS, default_stages
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

__all__ = [
    "DEFAULT_ERROR",
    "OUTCOMES",
    "BrandSpec",
    "KeySpec",
    "PipelineSpec",
    "Seed",
    "load_seed",
    "parse_brand",
    "parse_key",
    "parse_pipeline",
    "parse_seed",
]

# A failed run's error when the seed names none: the document's example.
DEFAULT_ERROR = "DataForSEO rate limit exceeded — retry in 60 seconds"
# What a pipeline's runs may do; "stuck" runs forever in its first stage.
OUTCOMES = ("done", "failed", "stuck")

_SEED_KEYS = frozenset(
    {
        "requestLogSize",
        "allowAnyKey",
        "allowAnyBrand",
        "randomSeed",
        "brands",
        "keys",
        "pipelines",
        "faults",
    }
)
_PIPELINE_KEYS = frozenset(
    {"stages", "queuedMs", "stageMs", "outcome", "outcomes", "failureRate", "failStage", "error"}
)
_BRAND_KEYS = frozenset({"name", "domain"})
_KEY_KEYS = frozenset({"brands", "revoked"})
_DEFAULT_STAGE_MS = 1000.0


@dataclass(frozen=True)
class PipelineSpec:
    """How the runs of one endpoint go."""

    endpoint: str
    stages: tuple[str, ...]
    queued_ms: float = 200.0
    stage_ms: float = _DEFAULT_STAGE_MS
    stage_ms_by_stage: Mapping[str, float] = field(default_factory=dict)
    outcome: str = "done"
    outcomes: tuple[str, ...] | None = None
    failure_rate: float = 0.0
    fail_stage: str | None = None
    error: str = DEFAULT_ERROR

    @property
    def kind(self) -> str:
        return ENDPOINTS[self.endpoint]

    def seconds(self, stage: str | None) -> float:
        """How long ``stage`` runs (None: the one unnamed stage of a stageless pipeline)."""
        ms = self.stage_ms_by_stage.get(stage, self.stage_ms) if stage else self.stage_ms
        return ms / 1000.0


@dataclass(frozen=True)
class BrandSpec:
    brand_id: str
    name: str
    domain: str


@dataclass(frozen=True)
class KeySpec:
    """An API key: the brands it may act for (None: every brand) and whether it works."""

    brands: tuple[str, ...] | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Seed:
    """Everything the simulator starts from (and returns to on ``POST /_sim/reset``)."""

    request_log_size: int = 100_000
    allow_any_key: bool = True
    allow_any_brand: bool = True
    random_seed: int = 0
    brands: Mapping[str, BrandSpec] = field(default_factory=dict)
    keys: Mapping[str, KeySpec] = field(default_factory=dict)
    pipelines: Mapping[str, PipelineSpec] = field(default_factory=dict)
    faults: Mapping[str, Any] = field(default_factory=dict)  # raw: Faults are built fresh

    def pipeline(self, endpoint: str) -> PipelineSpec:
        """The endpoint's pipeline as seeded, or the defaults."""
        spec = self.pipelines.get(endpoint)
        return spec if spec is not None else PipelineSpec(endpoint, default_stages(endpoint))


def _endpoint(endpoint: str, path: str) -> str:
    if endpoint not in ENDPOINTS:
        raise SpecError(path, f"unknown pipeline endpoint {endpoint!r}", f"use {sorted(ENDPOINTS)}")
    return endpoint


def _names(value: object, path: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(path, "expected a list of strings", "e.g. [brand_enrichment]")
    if allowed is not None:
        for i, v in enumerate(value):
            if v not in allowed:
                raise SpecError(f"{path}[{i}]", f"unknown {v!r}", f"use one of {list(allowed)}")
    return tuple(value)


def _outcome(value: object, path: str) -> str:
    if value not in OUTCOMES:
        raise SpecError(path, f"unknown outcome {value!r}", f"use one of {list(OUTCOMES)}")
    return str(value)


def parse_pipeline(endpoint: str, raw: object, path: str) -> PipelineSpec:
    _endpoint(endpoint, path)
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _PIPELINE_KEYS, path)
    stages = default_stages(endpoint)
    if "stages" in spec:
        stages = _names(spec["stages"], f"{path}.stages")
    stage_ms_raw = spec.get("stageMs", _DEFAULT_STAGE_MS)
    by_stage: dict[str, float] = {}
    stage_ms = _DEFAULT_STAGE_MS
    if isinstance(stage_ms_raw, Mapping):
        reject_unknown(stage_ms_raw, frozenset(stages), f"{path}.stageMs")
        by_stage = {
            name: get_number(stage_ms_raw, name, f"{path}.stageMs", 0.0) for name in stage_ms_raw
        }
    else:
        stage_ms = get_number(spec, "stageMs", path, _DEFAULT_STAGE_MS)
    outcomes = None
    if spec.get("outcomes") is not None:
        outcomes = _names(spec["outcomes"], f"{path}.outcomes", OUTCOMES)
        if not outcomes:
            raise SpecError(f"{path}.outcomes", "empty", "list at least one outcome")
    fail_stage = get_str(spec, "failStage", path, None)
    if fail_stage is not None and fail_stage not in stages:
        raise SpecError(f"{path}.failStage", f"{fail_stage!r} is not a stage", f"use {stages}")
    return PipelineSpec(
        endpoint=endpoint,
        stages=stages,
        queued_ms=get_number(spec, "queuedMs", path, 200.0),
        stage_ms=stage_ms,
        stage_ms_by_stage=by_stage,
        outcome=_outcome(spec.get("outcome", "done"), f"{path}.outcome"),
        outcomes=outcomes,
        failure_rate=get_number(spec, "failureRate", path, 0.0, maximum=1.0),
        fail_stage=fail_stage,
        error=get_str(spec, "error", path, DEFAULT_ERROR) or DEFAULT_ERROR,
    )


def parse_brand(brand_id: str, raw: object, path: str) -> BrandSpec:
    if not brand_id or len(brand_id) > 256:
        raise SpecError(path, "a brand id is 1 to 256 characters", "write the brand's id")
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _BRAND_KEYS, path)
    name = get_str(spec, "name", path, brand_id) or brand_id
    return BrandSpec(brand_id, name, get_str(spec, "domain", path, "example.com") or "example.com")


def parse_key(api_key: str, raw: object, path: str) -> KeySpec:
    if not api_key or len(api_key) > 256:
        raise SpecError(path, "a key is 1 to 256 characters", "write the key")
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _KEY_KEYS, path)
    brands = spec.get("brands")
    return KeySpec(
        brands=None if brands is None else _names(brands, f"{path}.brands"),
        revoked=get_bool(spec, "revoked", path, False),
    )


def parse_seed(raw: object, path: str = "seed") -> Seed:
    """Read a seed mapping; raises :class:`SpecError` on the first problem."""
    spec = require_mapping(raw if raw is not None else {}, path)
    reject_unknown(spec, _SEED_KEYS, path)
    brands_raw = spec.get("brands")
    keys_raw = spec.get("keys")
    pipelines_raw = require_mapping(spec.get("pipelines") or {}, f"{path}.pipelines")
    faults_raw = require_mapping(spec.get("faults") or {}, f"{path}.faults")
    parse_faults(faults_raw, f"{path}.faults")  # validate now; built fresh on each reset
    brands = require_mapping(brands_raw or {}, f"{path}.brands")
    keys = require_mapping(keys_raw or {}, f"{path}.keys")
    return Seed(
        request_log_size=int(get_number(spec, "requestLogSize", path, 100_000, minimum=1)),
        allow_any_key=get_bool(spec, "allowAnyKey", path, keys_raw is None),
        allow_any_brand=get_bool(spec, "allowAnyBrand", path, brands_raw is None),
        random_seed=int(get_number(spec, "randomSeed", path, 0)),
        brands={str(b): parse_brand(str(b), v, f"{path}.brands.{b}") for b, v in brands.items()},
        keys={str(k): parse_key(str(k), v, f"{path}.keys.{k}") for k, v in keys.items()},
        pipelines={
            str(e): parse_pipeline(str(e), v, f"{path}.pipelines.{e}")
            for e, v in pipelines_raw.items()
        },
        faults=faults_raw,
    )


def load_seed(path: str | Path) -> Seed:
    """Read a YAML seed file; raises :class:`ConfigError` with the file, line and fix."""
    return load_yaml_seed(path, parse_seed)
