"""The pipeline endpoints of seed 004 and what their runs look like: the vendor's facts.

Each endpoint (``POST /brands/{brand_id}/<endpoint>``) starts a run of one ``kind`` and
emits stages (``meta.current_stage``): ``/analyze`` all six in order, ``/discover`` none
at all, each single-purpose endpoint only its own. The document names the own stage of
none of them; ours: an endpoint whose work is one of the six stages emits that stage
(``enrich/brand``: ``brand_enrichment``, ``score``: ``leverage_scoring``), the others emit
their run kind (``brief``, ``execution``, ...). A seed may list other stages.

``stage_detail`` is the human-readable line of the stage in progress, from the
document's descriptions; the stages that iterate (``family_discovery``,
``evidence_collection``) count up as the stage goes on, while ``stage_started_at`` stays
put. Pure data and one pure function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["ENDPOINTS", "FULL_STAGES", "KINDS", "STAGE_LABELS", "default_stages", "stage_detail"]

# The six stages of a full run, in order (seed 004, "Reading stage progress").
FULL_STAGES: tuple[str, ...] = (
    "brand_enrichment",
    "competitor_discovery",
    "family_discovery",
    "evidence_collection",
    "leverage_scoring",
    "queue_building",
)

# Endpoint (the path after /brands/{brand_id}/) -> the kind of run it starts.
ENDPOINTS: Mapping[str, str] = {
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

# Every kind the document lists (competitor_discovery has no endpoint of the nine).
KINDS = frozenset({*ENDPOINTS.values(), "competitor_discovery"})

_OWN_STAGE: Mapping[str, str] = {"enrich/brand": "brand_enrichment", "score": "leverage_scoring"}

# What stage_detail says during each stage; {i} and {n} count through an iterating stage.
STAGE_LABELS: Mapping[str, tuple[str, int]] = {
    "brand_enrichment": ("crawling brand site + extracting identity", 0),
    "competitor_discovery": ("finding competitors via Tavily research", 0),
    "family_discovery": ("building keyword universe (step {i} of {n})", 10),
    "evidence_collection": ("analyzing SERPs for family {i} of {n}", 12),
    "leverage_scoring": ("cross-referencing brand gaps with opportunities", 0),
    "queue_building": ("assembling the ranked action queue", 0),
    "technical_enrichment": ("auditing the site's technical health", 0),
    "llm_enrichment": ("checking how LLMs describe the brand", 0),
    "synthesize": ("synthesizing opportunities from evidence", 0),
    "brief": ("drafting the content brief", 0),
    "execution": ("writing the content draft", 0),
}


def default_stages(endpoint: str) -> tuple[str, ...]:
    """The stages ``endpoint``'s runs emit when the seed says nothing."""
    if endpoint == "analyze":
        return FULL_STAGES
    if endpoint == "discover":
        return ()
    return (_OWN_STAGE.get(endpoint, ENDPOINTS[endpoint]),)


def stage_detail(stage: str, progress: float) -> str:
    """The ``stage_detail`` of ``stage`` when ``progress`` (0..1) of it is done."""
    text, steps = STAGE_LABELS.get(stage, (f"running {stage}", 0))
    if not steps:
        return text
    step = min(steps, 1 + math.floor(max(0.0, progress) * steps))
    return text.format(i=step, n=steps)
