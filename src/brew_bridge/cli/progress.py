"""``brew-bridge dev``'s live progress, read from the running bridge's own ``/metrics``.

The bridge already counts everything worth watching (events consumed, fires by result,
runs by status, dead letters by reason, each rate budget's requests left), so the
progress is a scrape of its ``/metrics`` a few times a second, parsed with
prometheus_client's own parser: no second bookkeeping that could disagree with the
metrics, the dashboard and the summary. On a terminal it redraws in place (rich
``Live``); elsewhere a line now and then, so a CI log shows a run that hangs.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table

from brew_bridge.cli.output import Output, Tally, counts_text, tally_view
from brew_bridge.observe.summary import RunSummary, samples_by_name

__all__ = ["Snapshot", "scrape", "watch"]

_REFRESH_SECONDS = 0.3
_PLAIN_EVERY_SECONDS = 15.0  # not a terminal: a progress line this often at most


@dataclass(frozen=True)
class Snapshot:
    """What one scrape showed."""

    summary: RunSummary
    in_flight: int  # runs fired and not ended yet
    budgets: dict[str, int]  # "target policy" -> requests left in its window

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        families = list(text_string_to_metric_families(text))
        samples = samples_by_name(families)
        budgets = {
            f"{dict(labels)['target']} {dict(labels)['policy']}": int(value)
            for labels, value in sorted(
                samples.get("brew_bridge_rate_budget_remaining", {}).items()
            )
        }
        in_flight = sum(samples.get("brew_bridge_runs_in_flight", {}).values())
        return cls(RunSummary.from_families(families, 0.0), int(in_flight), budgets)

    def tallies(self) -> list[Tally]:
        s = self.summary
        events = {
            "routed": s.events_routed,
            "duplicate": s.events_duplicate,
            "dropped": s.events_dropped,
        }
        return [
            ("events", events),
            ("fires", s.fires),
            ("runs", {**s.runs, "in flight": self.in_flight}),
            ("dead letters", s.dead_letters),
            ("budget left", self.budgets),
        ]


def scrape(url: str) -> Snapshot | None:
    """The bridge's metrics now, or None while it does not answer (starting, stopping)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 -- our loopback URL
            text: str = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    return Snapshot.parse(text)


def watch(out: Output, proc: subprocess.Popen[bytes], url: str, *, produced: int) -> None:
    """Show the progress of the bridge ``proc`` (serving metrics at ``url``) until it
    exits; ``produced``: the events it has to consume."""
    started = time.monotonic()
    if not out.rich:
        while not _exited(proc, _PLAIN_EVERY_SECONDS):
            snapshot = scrape(url)
            if snapshot is not None:
                out.line(_plain(snapshot, produced, time.monotonic() - started))
        return
    spinner = Spinner("dots", "starting the bridge")
    with Live(spinner, console=out.console, refresh_per_second=8, transient=True) as live:
        while not _exited(proc, _REFRESH_SECONDS):
            snapshot = scrape(url)
            if snapshot is not None:
                live.update(_view(spinner, snapshot, produced, time.monotonic() - started))


def _exited(proc: subprocess.Popen[bytes], within: float) -> bool:
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        return False
    return True


def _view(spinner: Spinner, snapshot: Snapshot, produced: int, elapsed: float) -> RenderableType:
    consumed = snapshot.summary.events_consumed
    spinner.update(text=f"brew-bridge run --once  {elapsed:.0f} s")
    bar = Table.grid(padding=(0, 2))
    bar.add_column(style="bold", min_width=14)
    bar.add_row(
        "consumed",
        ProgressBar(total=max(produced, 1), completed=consumed, width=30),
        f"{consumed}/{produced}",
    )
    return Group(spinner, bar, tally_view(snapshot.tallies()))


def _plain(snapshot: Snapshot, produced: int, elapsed: float) -> str:
    parts = [f"consumed {snapshot.summary.events_consumed}/{produced}"]
    parts += [f"{label} {counts_text(counts)}" for label, counts in snapshot.tallies()[1:]]
    return f"... {elapsed:.0f} s: " + "; ".join(parts)
