"""What ``brew-bridge sim --target pinkfish`` serves without ``--seed``."""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_SEED"]

# What the simulator serves without --seed: one trigger of each outcome.
DEMO_SEED: dict[str, Any] = {
    "triggers": {
        "trg_hello": {
            "automationId": "d831ue4rccbc73knbi80",
            "automationName": "Hello World",
            "automationVersion": 3,
            "durationMs": 2500,
            "designatedOutput": {"fileName": "output.txt", "size": 13},
        },
        "trg_research": {
            "automationName": "Research brief",
            "steps": ["Search", "Read", "Summarize"],
            "durationMs": 4000,
            "outcome": "FAILED",
        },
        "trg_slow": {"automationName": "Slow crawl", "durationMs": 6000, "outcome": "TIMEOUT"},
    }
}
