"""The status page renderer: pure functions of a snapshot, no I/O; and its two routes,
served in memory (httpx's ASGI transport, no socket)."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from status_support import Panels

from brew_bridge.errors import StoreError
from brew_bridge.events import SourceRecord
from brew_bridge.observe.logs import hide, mask_emails, safe_text
from brew_bridge.observe.metrics import Metrics
from brew_bridge.observe.server import build_app
from brew_bridge.observe.status import (
    PANELS,
    BudgetLine,
    LaneStatus,
    StatusSnapshot,
    render_status,
    status_json,
    status_routes,
)
from brew_bridge.store import DeadLetterRow, OutboxOverview, OutboxStats

NOW = 1_780_000_000.0
KEY = "brew_live_k3y_status_page"
EMAIL = "ada.lovelace@example.com"


def stats(**kw: Any) -> OutboxStats:
    fields: dict[str, Any] = {
        "deliveries": dict.fromkeys(("pending", "firing", "fired", "retry_wait", "dead"), 0),
        "backlog": 0,
        "live_runs": 0,
        "runs_by_status": {},
        "dead_letters": 0,
        "dead_letters_unredriven": 0,
        "dead_letters_unpublished": 0,
        "oldest_pending_age": None,
    }
    return OutboxStats(**{**fields, **kw})


def dead_letter(i: int, message: str, *, route: str | None = "welcome") -> DeadLetterRow:
    record = SourceRecord(
        source="kafka",
        stream="signups",
        position=f"0:{i}",
        key=EMAIL.encode(),
        value=f'{{"email": "{EMAIL}", "apiKey": "{KEY}"}}'.encode(),
    )
    return DeadLetterRow(
        id=i,
        stage="ingest",
        reason="mapping_error",
        code=None,
        message=message,
        attempts=0,
        route=route,
        idempotency_key=f"welcome:{EMAIL}",
        delivery_id=None,
        run_id=None,
        details={"payload": {"email": EMAIL}},
        record=record,
        first_error_at=NOW - 120,
        last_error_at=NOW - 120,
        created_at=NOW - 120,
        redriven_at=None,
        published_at=None,
    )


def lane(target: str, title: str, *, problem: str | None = None, used: int = 3) -> LaneStatus:
    return LaneStatus(
        target=target,
        title=title,
        circuit="open" if problem else "closed",
        problem=problem,
        budgets=(BudgetLine("fire", used, 60, 60.0), BudgetLine("run_read", 1, 100, 60.0)),
    )


def full_snapshot(message: str = f"email {EMAIL} is not allowed") -> StatusSnapshot:
    return StatusSnapshot.of(
        NOW,
        OutboxOverview(
            stats(
                deliveries={"pending": 4, "firing": 1, "fired": 9, "retry_wait": 2, "dead": 1},
                backlog=7,
                live_runs=2,
                runs_by_status={"completed": 8, "failed": 1, "running": 2},
                dead_letters=3,
                oldest_pending_age=3725.0,
            ),
            dead_letters_by_reason={"mapping_error": 2, "run_failed": 1},
            not_redriven_by_reason={"mapping_error": 2},
            newest_dead_letters=(dead_letter(2, message), dead_letter(1, "plain", route=None)),
        ),
        route_targets={"welcome": "brew"},
        lanes=[
            lane("brew", "Brew"),
            lane(
                "pinkfish",
                "Pinkfish",
                problem=f"Pinkfish answered 401 UNAUTHORIZED for {KEY} of ops@example.com; "
                "fix: rotate PINKFISH_API_KEY.",
            ),
            lane("boring_marketing", "Boring Marketing", used=0),
        ],
        fixes={"consumer": "the Kafka consumer is not running"},
    )


def test_every_panel_is_there_and_filled() -> None:
    page = render_status(full_snapshot())
    found = Panels(page)
    assert list(found.text) == list(PANELS)
    text = found.text
    assert "7" in text["outbox"]
    assert "1h 2m" in text["outbox"]
    assert "retry_wait" in text["outbox"]
    assert "3 of 60 in the last 1m" in text["budgets"]
    for title in ("Brew", "Pinkfish", "Boring Marketing"):
        assert title in text["budgets"]
        assert title in text["circuits"]
    assert "completed" in text["runs"]
    assert "2" in text["runs"]
    assert "mapping_error" in text["dead-letters"]
    assert "run_failed" in text["dead-letters"]
    assert "signups:0:2" in text["newest-dead-letters"]
    assert "brew" in text["newest-dead-letters"]  # the route's target
    assert "2m" in text["newest-dead-letters"]  # its age
    assert "open" in text["circuits"]
    assert "rotate PINKFISH_API_KEY" in text["circuits"]
    assert "the Kafka consumer is not running" in text["fixes"]
    assert "2 not redriven" in text["fixes"]
    assert "brew-bridge dlq redrive" in text["fixes"]
    assert "no dead letters" not in page
    assert "no runs yet" not in page


def test_no_script_no_external_resource_and_a_refresh() -> None:
    page = render_status(full_snapshot())
    found = Panels(page)
    assert found.scripts == 0
    assert found.external == []
    assert "<meta http-equiv='refresh' content='5'>" in page


def test_an_empty_outbox_says_so_in_every_panel() -> None:
    snap = StatusSnapshot.of(
        NOW,
        OutboxOverview(stats(), {}, {}, ()),
        route_targets={},
        lanes=[],
        fixes={},
    )
    text = Panels(render_status(snap)).text
    assert "no deliveries yet" in text["outbox"]
    assert "none waiting" in text["outbox"]
    assert "no targets yet" in text["budgets"]
    assert "no targets yet" in text["circuits"]
    assert "no runs yet" in text["runs"]
    assert "no dead letters" in text["dead-letters"]
    assert "no dead letters" in text["newest-dead-letters"]
    assert "nothing to fix" in text["fixes"]
    assert all(words.strip() for words in text.values())


def test_emails_and_keys_never_reach_the_page_or_the_json() -> None:
    hide(KEY)
    message = f"{EMAIL} refused with Authorization: Bearer {KEY}; also grace%40example.org"
    snap = full_snapshot(message)
    page = render_status(snap)
    doc = repr(status_json(snap))
    for out in (page, doc):
        assert EMAIL not in out
        assert KEY not in out
        assert "grace%40example.org" not in out
        assert "ops@example.com" not in out  # in a target's refusal
        assert "welcome:ada" not in out  # the idempotency key is not shown
        assert "a***@example.com" in out
    # The record's value and the details are not shown at all.
    assert "apiKey" not in page
    assert "payload" not in page


def test_a_secret_shaped_string_is_redacted_even_without_hide() -> None:
    page = render_status(full_snapshot("the key brew_sk_9f8e7d6c5b4a was refused"))
    assert "brew_sk_9f8e7d6c5b4a" not in page
    assert "[REDACTED]" in page


def test_markup_in_a_message_is_escaped() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    page = render_status(full_snapshot(evil))
    assert "<script>" not in page
    assert "<img" not in page
    assert html.escape(evil) in page
    assert Panels(page).scripts == 0


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ada.lovelace@example.com", "a***@example.com"),
        ("to: <grace@mail.example.org>", "to: <g***@mail.example.org>"),
        ("q=hedy%40example.net&x=1", "q=h***%40example.net&x=1"),
        ('{"email":"x_y+z@ex-ample.co.uk"}', '{"email":"x***@ex-ample.co.uk"}'),
        ("a***@example.com", "a***@example.com"),  # idempotent
        ("no address @ here, user@localhost", "no address @ here, user@localhost"),
    ],
)
def test_mask_emails(text: str, masked: str) -> None:
    assert mask_emails(text) == masked
    assert safe_text(text) == masked


def test_the_json_has_the_same_numbers() -> None:
    doc = status_json(full_snapshot())
    assert doc["outbox"]["backlog"] == 7
    assert doc["outbox"]["oldestPendingAgeSeconds"] == 3725.0
    assert doc["runs"] == {"live": 2, "byStatus": {"completed": 8, "failed": 1, "running": 2}}
    assert doc["deadLetters"]["byReason"] == {"mapping_error": 2, "run_failed": 1}
    assert [d["id"] for d in doc["deadLetters"]["newest"]] == [2, 1]
    assert [t["target"] for t in doc["targets"]] == ["brew", "pinkfish", "boring_marketing"]
    assert doc["targets"][0]["budgets"][0] == {
        "policy": "fire",
        "used": 3,
        "limit": 60,
        "windowSeconds": 60.0,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["takenAt"])


async def test_the_routes_serve_the_page_and_the_json_and_a_503_when_the_outbox_fails() -> None:
    failure: list[StoreError] = []

    async def snapshot() -> StatusSnapshot:
        if failure:
            raise failure[0]
        return full_snapshot()

    app = build_app(Metrics(), {}, routes=status_routes(snapshot))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert list(Panels(page.text).text) == list(PANELS)
        doc = await http.get("/status.json")
        assert doc.json() == status_json(full_snapshot())

        failure.append(StoreError(f"outbox '/data/outbox.db': disk I/O error near {EMAIL}"))
        for path in ("/", "/status.json"):
            broken = await http.get(path)
            assert broken.status_code == 503
            assert "disk I/O error" in broken.text
            assert EMAIL not in broken.text
