"""The ``targets:`` section: fire-and-follow products beside Brew, by name.

Brew is configured in its own ``brew:`` section and is the target named ``brew`` (a
route without ``target:`` fires it). Every other target is an entry of ``targets:``
whose ``kind`` says which product it is; a route names it with ``target: <name>``::

    targets:
      research:
        kind: pinkfish
        base_url: https://triggers.app.pinkfish.ai
        api_key_env: PINKFISH_API_KEY
      growth:
        kind: boring_marketing
        brand_id: 4a6e...

The API key of each is read from the environment variable ``api_key_env`` names, else
from ``api_key_file``; never from the YAML. Neither product documents rate limits: the
budgets below are conservative defaults, set them to what your plan allows.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from brew_bridge.config.sections import RateLimit, RateLimitsConfig, RetryConfig, Strict

__all__ = [
    "PIPELINES",
    "BoringMarketingConfig",
    "PinkfishConfig",
    "TargetConfig",
    "TargetRateLimits",
]


# Boring Marketing's pipeline endpoints (seed 004), what a route's trigger: names, and the
# kind of run each starts.
PIPELINES: dict[str, str] = {
    "analyze": "full",
    "discover": "discovery",
    "enrich/brand": "brand_enrichment",
    "enrich/technical": "technical_enrichment",
    "enrich/llm": "llm_enrichment",
    "synthesize": "synthesize",
    "score": "scoring",
    "brief": "brief",
    "execute": "execution",
}


class TargetRateLimits(RateLimitsConfig):
    """Per-key budgets: fires, and reads of runs (a list read counts as one); the
    targets here make no ``trigger_read``."""

    fire: RateLimit = RateLimit(limit=60, window_seconds=60)
    run_read: RateLimit = RateLimit(limit=120, window_seconds=60)


class _TargetBase(Strict):
    base_url: str
    # The environment variable holding the API key; else api_key_file (a mounted secret).
    api_key_env: str
    api_key_file: str | None = None
    # Never set in YAML; filled from api_key_env / api_key_file when the config loads.
    api_key: SecretStr | None = Field(None, exclude=True)
    # At most the shortest rate_limits window (checked with the whole config).
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(10, ge=1)
    rate_limits: TargetRateLimits = TargetRateLimits()
    retry: RetryConfig = RetryConfig()


class PinkfishConfig(_TargetBase):
    """A Pinkfish workflow trigger (seed 003: async polling)."""

    kind: Literal["pinkfish"]
    base_url: str = "http://127.0.0.1:8788"
    api_key_env: str = "PINKFISH_API_KEY"
    # COMPLETE: read .../results once and put them on the result-topic record.
    fetch_results: bool = True
    # Each live run's status is read every run_age / 10 seconds, within these bounds (the
    # document: every 2-5 s for most workflows, 10-30 s for long-running ones). Pinkfish
    # has no list read: each check of a run costs one read.
    poll_interval_seconds: float = Field(3.0, gt=0)
    max_poll_interval_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _poll_bounds(self) -> PinkfishConfig:
        if self.poll_interval_seconds > self.max_poll_interval_seconds:
            raise ValueError("poll_interval_seconds must not be above max_poll_interval_seconds")
        return self


class BoringMarketingConfig(_TargetBase):
    """Boring Marketing pipelines for a brand (seed 004: run polling)."""

    kind: Literal["boring_marketing"]
    base_url: str = "http://127.0.0.1:8789"
    api_key_env: str = "BM_API_KEY"
    # The brand a route fires for when its payload carries no brand_id.
    brand_id: str | None = None
    # A live run whose meta.stage_started_at has not moved for this long is stuck: it is
    # canceled and fired again (the document says 15 minutes; re-running is idempotent).
    stuck_after_seconds: float = Field(900.0, gt=0)
    # Stuck runs canceled and fired again per event; one more stuck run is dead-lettered.
    max_stuck_refires: int = Field(2, ge=0)
    # Label the stage gauge with the brand id too (off: brand ids are not labels).
    stage_brand_label: bool = False
    # How often a live run is checked (one list read per brand settles all its runs): the
    # document recommends 10-15 s for full pipelines (analyze, discover), 5 s for the rest.
    pipeline_poll_interval_seconds: float = Field(10.0, gt=0)
    stage_poll_interval_seconds: float = Field(5.0, gt=0)


TargetConfig = Annotated[PinkfishConfig | BoringMarketingConfig, Field(discriminator="kind")]
