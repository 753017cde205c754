"""dev's live progress reads the bridge's /metrics page: the same counts as its summary."""

from __future__ import annotations

import io

from prometheus_client import generate_latest
from rich.console import Console

from brew_bridge.cli.output import Output, Tally
from brew_bridge.cli.progress import Snapshot
from brew_bridge.observe.metrics import Metrics
from brew_bridge.observe.summary import RunSummary


def busy_metrics() -> Metrics:
    metrics = Metrics()
    metrics.events_consumed.labels("kafka").inc(5)
    metrics.events_routed.labels("kafka", "welcome").inc(3)
    metrics.events_dropped.labels("kafka", "no_route").inc()
    metrics.fires.labels("brew", "welcome", "TRIGGERED").inc(2)
    metrics.fires.labels("brew", "welcome", "INVALID_REQUEST").inc()
    metrics.runs_terminal.labels("brew", "welcome", "completed").inc()
    metrics.runs_in_flight.set(1)
    metrics.dead_letters.labels("ingest", "", "invalid_json").inc()
    metrics.dead_letters.labels("fire", "welcome", "fire_rejected").inc()
    metrics.rate_budget_remaining.labels("brew", "fire").set(57)
    metrics.rate_budget_remaining.labels("brew", "run_read").set(99)
    return metrics


def test_a_scraped_page_counts_what_the_registry_counts() -> None:
    metrics = busy_metrics()
    snapshot = Snapshot.parse(generate_latest(metrics.registry).decode())
    assert snapshot.summary == RunSummary.from_metrics(metrics, 0.0)
    assert snapshot.summary.events_consumed == 5
    expected: list[Tally] = [
        ("events", {"routed": 3, "duplicate": 0, "dropped": 1}),
        ("fires", {"INVALID_REQUEST": 1, "TRIGGERED": 2}),
        ("runs", {"completed": 1, "in flight": 1}),
        ("dead letters", {"fire_rejected": 1, "invalid_json": 1}),
        ("budget left", {"brew fire": 57, "brew run_read": 99}),
    ]
    assert snapshot.tallies() == expected


def test_a_bridge_that_has_done_nothing_yet_shows_zeros_and_nones() -> None:
    snapshot = Snapshot.parse(generate_latest(Metrics().registry).decode())
    buffer = io.StringIO()
    Output(Console(file=buffer)).tally(snapshot.tallies())
    assert buffer.getvalue().splitlines() == [
        "events          routed 0, duplicate 0, dropped 0",
        "fires           none",
        "runs            in flight 0",
        "dead letters    none",
        "budget left     none",
    ]
