"""What a run of the bridge did, read back from its metrics: what ``run --once`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brew_bridge.observe.metrics import Metrics

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    """What ``--once`` prints: this process's counts, from its metrics."""

    events_consumed: int = 0
    events_routed: int = 0
    events_duplicate: int = 0
    events_dropped: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason
    fires: dict[str, int] = field(default_factory=dict)  # by code
    runs: dict[str, int] = field(default_factory=dict)  # by terminal status
    elapsed_seconds: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Metrics, elapsed: float) -> RunSummary:
        def total(name: str) -> int:
            return int(sum(_samples(metrics, name).values()))

        def by(name: str, label: str) -> dict[str, int]:
            counts: dict[str, int] = {}
            for labels, value in _samples(metrics, name).items():
                key = dict(labels)[label]
                counts[key] = counts.get(key, 0) + int(value)
            return {k: v for k, v in sorted(counts.items()) if v}

        return cls(
            events_consumed=total("brew_bridge_events_consumed_total"),
            events_routed=total("brew_bridge_events_routed_total"),
            events_duplicate=total("brew_bridge_events_duplicate_total"),
            events_dropped=total("brew_bridge_events_dropped_total"),
            dead_letters=by("brew_bridge_dead_letters_total", "reason"),
            fires=by("brew_bridge_fires_total", "code"),
            runs=by("brew_bridge_runs_terminal_total", "status"),
            elapsed_seconds=round(elapsed, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "events": {
                "consumed": self.events_consumed,
                "routed": self.events_routed,
                "duplicate": self.events_duplicate,
                "dropped": self.events_dropped,
            },
            "dead_letters": self.dead_letters,
            "fires": self.fires,
            "runs": self.runs,
            "elapsed_seconds": self.elapsed_seconds,
        }


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out
