"""The status page of a live bridge: the sample events on a real Kafka broker (Tansu) ->
``brew-bridge run`` (a real process) -> the Brew simulator, with fires accepted, refused
and runs failed, and the broken samples dead-lettered at ingest. ``/`` is checked against
the outbox file, then rendered by a real headless Chromium: a screenshot, and the DOM
with every panel filled and no sample's email address or the API key anywhere."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import BridgeProcess
from status_support import Panels, chromium_run, png_size
from test_e2e import API_KEY, ENV, REPO, Setup, _seed

from brew_bridge.observe.status import NEWEST_DEAD_LETTERS, PANELS
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle
from brew_bridge.testing.simulator import running_simulator

_EMAIL = re.compile(rb"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# Every address in every sample, as it is written there.
SAMPLE_EMAILS = sorted(
    {
        m.decode()
        for f in (REPO / "config" / "samples").rglob("*")
        if f.is_file()
        for m in _EMAIL.findall(f.read_bytes())
    }
)


# The failed run's error names the customer and (as a careless vendor might) the key:
# the page must mask the one and redact the other.
LEAKY_ERROR = (
    "SMS step failed: grace.hopper@example.com has no phone number "
    f"(called with Authorization: Bearer {API_KEY})"
)


def _status_seed() -> dict[str, Any]:
    seed = _seed()
    for automation in seed["triggers"]["tri_dunning"]["automations"]:
        if automation.get("outcome") == "failed":
            automation["error"] = LEAKY_ERROR
    return seed


@dataclass
class LiveBridge:
    base: str
    setup: Setup
    bridge: BridgeProcess


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, broker: BrokerHandle) -> Iterator[LiveBridge]:
    """A bridge that has delivered every sample it will (runs ended, dead letters written)
    and keeps serving its page; stopped after the module's tests."""
    tmp_path = tmp_path_factory.mktemp("status")
    with running_simulator(_status_seed()) as sim:
        setup = Setup(tmp_path, broker, sim)
        setup.produce(broker)
        bridge = BridgeProcess(["run", "--config", str(setup.config_file)], ENV)
        try:
            port = bridge.wait_for_log("http server listening")["port"]
            base = f"http://127.0.0.1:{port}"
            runs = sum(setup.runs.values())
            dead = sum(setup.dead_letters.values())

            def settled() -> bool:
                doc = httpx.get(f"{base}/status.json").json()
                ended = sum(n for s, n in doc["runs"]["byStatus"].items() if s in setup.runs)
                return (
                    doc["runs"]["live"] == 0
                    and ended == runs
                    and doc["deadLetters"]["total"] == dead
                    and doc["outbox"]["backlog"] == 0
                )

            deadline = time.monotonic() + 90
            while not settled():
                assert time.monotonic() < deadline, "the samples did not settle in 90 s"
                assert bridge.proc.poll() is None, bridge.stderr[-3000:]
                time.sleep(0.2)
            yield LiveBridge(base, setup, bridge)
        finally:
            code = bridge.stop()
        assert code == 0, bridge.stderr[-3000:]


def _outbox_view(live: LiveBridge) -> dict[str, Any]:
    outbox = Outbox.open(live.setup.config.outbox.path)
    try:
        return {
            "stats": outbox.stats(time.time()),
            "by_reason": outbox.dead_letters_by_reason(),
            "newest": outbox.dead_letters(limit=NEWEST_DEAD_LETTERS),
        }
    finally:
        outbox.close()


def _assert_nothing_secret(text: str, where: str) -> None:
    assert SAMPLE_EMAILS, "the samples have email addresses to look for"
    shown = [email for email in SAMPLE_EMAILS if email in text]
    assert shown == [], f"{where} shows unmasked addresses: {shown}"
    assert API_KEY not in text, f"{where} shows the API key"


def test_the_page_matches_the_outbox(live: LiveBridge) -> None:
    page = httpx.get(f"{live.base}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    doc = httpx.get(f"{live.base}/status.json").json()
    view = _outbox_view(live)
    stats = view["stats"]

    assert doc["outbox"]["deliveries"] == dict(stats.deliveries)
    assert doc["outbox"]["backlog"] == stats.backlog == 0
    assert doc["runs"]["byStatus"] == dict(stats.runs_by_status)
    assert doc["deadLetters"]["byReason"] == view["by_reason"] == dict(live.setup.dead_letters)
    newest = view["newest"]
    assert len(newest) == min(NEWEST_DEAD_LETTERS, sum(live.setup.dead_letters.values()))
    assert [d["id"] for d in doc["deadLetters"]["newest"]] == [d.id for d in newest]
    for shown, row in zip(doc["deadLetters"]["newest"], newest, strict=True):
        assert (shown["reason"], shown["route"]) == (row.reason, row.route)
        if row.route is not None:
            assert shown["target"] == "brew"
    [brew] = doc["targets"]
    assert (brew["target"], brew["circuit"], brew["problem"]) == ("brew", "closed", None)
    fire = next(b for b in brew["budgets"] if b["policy"] == "fire")
    # Every fire, the two refused ones too, while it is in the window: a slow machine may
    # take longer than the window to settle, and the first ones leave it.
    fires = len(live.setup.accepted) + 2
    assert 0 < fire["used"] <= fires
    assert fire["limit"] == 60
    assert "dead letters" in doc["fixes"]

    text = Panels(page.text).text
    assert list(text) == list(PANELS)
    for reason, n in live.setup.dead_letters.items():
        assert reason in text["dead-letters"], reason
        assert str(n) in text["dead-letters"]
    for status in stats.runs_by_status:
        assert status in text["runs"]
    for row in newest:
        assert f"{row.id} " in text["newest-dead-letters"]
    assert re.search(r"\b\d+ of 60 in the last 1m\b", text["budgets"]), text["budgets"]
    assert "closed" in text["circuits"]
    assert "brew-bridge dlq redrive" in text["fixes"]

    for body, where in (
        (page.text, "the page"),
        (httpx.get(f"{live.base}/status.json").text, "the JSON"),
    ):
        _assert_nothing_secret(body, where)


def test_chromium_renders_every_panel_and_nothing_unmasked(
    live: LiveBridge, chromium: str, tmp_path: Path
) -> None:
    shot = tmp_path / "status.png"
    chromium_run(
        chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", f"{live.base}/"
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    assert png_size(shot) == (1280, 2000)
    # A blank or error page of that size compresses to a few kB; seven filled panels do not.
    assert shot.stat().st_size > 20_000, shot.stat().st_size

    dom = chromium_run(chromium, tmp_path, "--dump-dom", f"{live.base}/").stdout
    panels = Panels(dom)
    assert list(panels.text) == list(PANELS), "a panel is missing from the rendered DOM"
    assert panels.scripts == 0
    assert panels.external == []
    empty_words = ("no deliveries yet", "no runs yet", "no dead letters", "no targets yet")
    for pid, words in panels.text.items():
        assert words.strip(), f"panel {pid} is empty"
        assert not any(w in words for w in empty_words), f"panel {pid} says no data: {words}"
    newest = panels.text["newest-dead-letters"]
    assert "g***@example.com has no phone number" in newest, "the failed run's error, masked"
    assert "[REDACTED]" in newest
    _assert_nothing_secret(dom, "the rendered DOM")
    _assert_nothing_secret(httpx.get(f"{live.base}/").text, "the page source")
