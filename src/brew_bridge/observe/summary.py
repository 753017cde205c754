"""What a run of the bridge did, read back from its metrics: what ``run --once`` prints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from brew_bridge.observe.metrics import Metrics

__all__ = ["Labels", "RunSummary", "samples_by_name"]


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
        return cls.from_families(metrics.registry.collect(), elapsed)

    @classmethod
    def from_families(cls, families: Iterable[Metric], elapsed: float) -> RunSummary:
        """From metric families: a registry's, or a scraped ``/metrics`` page parsed
        (``prometheus_client.parser.text_string_to_metric_families``)."""
        samples = samples_by_name(families)

        def total(name: str) -> int:
            return int(sum(samples.get(name, {}).values()))

        def by(name: str, label: str) -> dict[str, int]:
            counts: dict[str, int] = {}
            for labels, value in samples.get(name, {}).items():
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


Labels = tuple[tuple[str, str], ...]


def samples_by_name(families: Iterable[Metric]) -> dict[str, dict[Labels, float]]:
    """Every sample's value by sample name, then by its sorted labels."""
    out: dict[str, dict[Labels, float]] = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out
