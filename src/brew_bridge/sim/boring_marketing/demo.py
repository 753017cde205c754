"""What ``brew-bridge sim --target boring-marketing`` serves without ``--seed``."""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_BRAND", "DEMO_KEY", "DEMO_SEED"]

DEMO_BRAND = "4a6e0c1e-8d2f-4b7a-9c3e-5f1d2a7b8c90"
DEMO_KEY = "bm_54249af28748e0e24b4d2782122e2de9"

# What the simulator serves without --seed: minutes compressed into seconds.
DEMO_SEED: dict[str, Any] = {
    "brands": {DEMO_BRAND: {"name": "Acme", "domain": "acme.example"}},
    "keys": {DEMO_KEY: {"brands": [DEMO_BRAND]}},
    "pipelines": {
        "analyze": {"stageMs": 1500, "queuedMs": 500},
        "discover": {"stageMs": 4000, "outcome": "failed"},
        "score": {"stageMs": 2000, "outcomes": ["stuck", "done"]},
        "brief": {"stageMs": 1000},
    },
}
