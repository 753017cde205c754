"""The Pinkfish target's pure parts: reading answers, classifying outcomes, planning reads."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from pinkfish_support import KEY, START, Slots, delivery, fixture
from pydantic import ValidationError

from brew_bridge.config.targets import PinkfishConfig
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TargetError,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import Reason, RunRead, run_dead_letter_reason
from brew_bridge.store import RunRecord
from brew_bridge.targets.http import Unreadable
from brew_bridge.targets.pinkfish.client import MaskKeyInPaths, PinkfishClient
from brew_bridge.targets.pinkfish.poll import Pace, due_runs, run_read
from brew_bridge.targets.pinkfish.target import PinkfishTarget, classify
from brew_bridge.targets.pinkfish.wire import (
    error_of,
    mask_key_paths,
    normalise_status,
    run_status,
    triggered,
)

# -- wire ---------------------------------------------------------------------------------


def test_a_fires_ids_come_from_the_documents_headers() -> None:
    headers = httpx.Headers(fixture("fire_headers"))
    fired = triggered(headers, "rid")
    assert (fired.run_id, fired.automation_id, fired.request_id) == (
        "1778786207851669420",
        "d831ue4rccbc73knbi80",
        "rid",
    )


@pytest.mark.parametrize("missing", ["X-Pf-Run-Id", "X-Pf-Automation-Id"])
def test_a_fire_answer_without_an_id_cannot_be_read(missing: str) -> None:
    headers = httpx.Headers({k: v for k, v in fixture("fire_headers").items() if k != missing})
    with pytest.raises(Unreadable, match=missing):
        triggered(headers, None)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("PENDING", "pending"),
        ("RUNNING", "running"),
        ("COMPLETE", "completed"),
        ("FAILED", "failed"),
        ("TIMEOUT", "timed_out"),
        ("complete", "completed"),
        ("QUEUED", "queued"),  # unknown: not terminal, the run stays live
    ],
)
def test_statuses_in_the_bridges_words(word: str, status: str) -> None:
    assert normalise_status(word) == status


def test_the_documents_status_body_reads() -> None:
    seen = run_status(fixture("status_complete"))
    assert (seen.status, seen.bridge_status) == ("COMPLETE", "completed")
    assert seen.steps() == (
        {"step": "1", "name": "Step 1", "status": "COMPLETE", "executionOrder": 1},
    )
    assert seen.failure() is None


@pytest.mark.parametrize(
    "body", [[], {"runId": "1"}, {"status": ""}, {"status": "RUNNING", "stepStatus": []}]
)
def test_a_status_body_without_a_status_cannot_be_read(body: Any) -> None:
    with pytest.raises(Unreadable):
        run_status(body)


def status_body(status: str, steps: dict[str, tuple[str, str, int]]) -> dict[str, Any]:
    return {
        "status": status,
        "stepStatus": {k: s for k, (s, _, _) in steps.items()},
        "stepInfo": {
            k: {"status": s, "name": n, "executionOrder": o} for k, (s, n, o) in steps.items()
        },
    }


def test_steps_come_in_execution_order_and_a_failure_names_its_step() -> None:
    seen = run_status(
        status_body(
            "FAILED",
            {
                "10": ("FAILED", "Send", 10),
                "2": ("COMPLETE", "Summarize", 2),
                "1": ("COMPLETE", "Fetch", 1),
            },
        )
    )
    assert [s["name"] for s in seen.steps()] == ["Fetch", "Summarize", "Send"]
    assert seen.failure() == "Pinkfish run failed at step 10 (Send) (FAILED)"
    timeout = run_status(status_body("TIMEOUT", {"1": ("TIMEOUT", "Crawl", 1)}))
    assert timeout.failure() == (
        "Pinkfish stopped the run at step 1 (Crawl): it exceeded its execution time limit (TIMEOUT)"
    )


@pytest.mark.parametrize(
    ("status", "cls", "error_type"),
    [
        (401, AuthError, "authentication_error"),
        (403, AuthError, "authorization_error"),
        (429, RateLimited, "rate_limit"),
        (404, ApiError, "not_found"),
        (400, ApiError, "invalid_request"),
        (503, ApiError, "internal_error"),
    ],
)
def test_an_error_answer_is_typed_by_its_status(
    status: int, cls: type[ApiError], error_type: str
) -> None:
    error = error_of(status, {"error": "SOME_CODE", "message": "said"}, {"x-request-id": "r1"})
    assert type(error) is cls
    assert (error.code, error.message, error.type, error.request_id) == (
        "SOME_CODE",
        "said",
        error_type,
        "r1",
    )


def test_an_error_without_our_body_has_the_status_as_its_code() -> None:
    error = error_of(502, None, {"retry-after": "3"})
    assert (error.code, error.message, error.retry_after) == (
        "HTTP_502",
        "Pinkfish answered 502",
        3.0,
    )
    assert error_of(503, "<html>", {"retry-after": "Wed, 21 Oct 2026"}).retry_after is None


def test_an_error_echoing_the_url_or_the_key_keeps_neither() -> None:
    body = {
        "error": "NOT_FOUND",
        "message": f"Cannot GET /ext/webhook/{KEY}/runs/a/1/status (key {KEY})",
        "detail": [KEY],
    }
    error = error_of(404, body, {}, secret=KEY)
    for text in (str(error), repr(error), str(error.envelope()), str(error.body)):
        assert KEY not in text
    assert "/ext/webhook/***/runs/a/1/status" in error.message


def test_mask_key_paths_hides_the_key_segment_of_every_polling_url() -> None:
    text = f'GET http://h/ext/webhook/{KEY}/runs/a/1/status "200" and /ext/webhook/k2/runs'
    assert mask_key_paths(text) == (
        'GET http://h/ext/webhook/***/runs/a/1/status "200" and /ext/webhook/***/runs'
    )


def test_the_httpx_log_filter_masks_the_formatted_line() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("GET", f"http://h/ext/webhook/{KEY}/runs/a/1/status", "HTTP/1.1", 200, "OK"),
        None,
    )
    assert MaskKeyInPaths().filter(record)
    assert record.getMessage() == (
        'HTTP Request: GET http://h/ext/webhook/***/runs/a/1/status "HTTP/1.1 200 OK"'
    )


# -- classify -----------------------------------------------------------------------------


def api_error(status: int, cls: type[ApiError] = ApiError) -> ApiError:
    return cls(status=status, code="X", type="t", message="m")


@pytest.mark.parametrize(
    ("outcome", "disposition"),
    [
        (api_error(401, AuthError), Disposition.AUTH),
        (api_error(403, AuthError), Disposition.AUTH),
        (api_error(404), Disposition.REJECT),
        (api_error(400), Disposition.REJECT),
        (api_error(409), Disposition.REJECT),
        (api_error(408), Disposition.RETRY),
        (api_error(429, RateLimited), Disposition.RETRY),
        (api_error(500), Disposition.RETRY),
        (api_error(504), Disposition.RETRY),
        (TransportError("not sent"), Disposition.RETRY),
        (UnknownOutcome("sent, no answer"), Disposition.UNKNOWN_OUTCOME),
        (TargetError("?"), Disposition.REJECT),
        (RuntimeError("a bug"), Disposition.RETRY),
    ],
)
def test_what_each_fire_outcome_means(outcome: BaseException, disposition: Disposition) -> None:
    assert classify(outcome) is disposition


async def test_an_unknown_outcome_is_fired_again_only_where_the_route_says_so() -> None:
    async with httpx.AsyncClient() as http:
        client = PinkfishClient(http, target="research", api_key=lambda: KEY)
        target = PinkfishTarget(
            "research", client, pace=SETTINGS, fetch_results=True, fire_again=["daily"]
        )
    unknown = UnknownOutcome("sent, no answer")
    assert target.classify(unknown, delivery(route="daily")) is Disposition.RETRY
    assert target.classify(unknown, delivery(route="research")) is Disposition.UNKNOWN_OUTCOME
    assert target.classify(api_error(503), delivery(route="daily")) is Disposition.RETRY


async def test_the_auth_hint_names_the_targets_key_settings() -> None:
    async with httpx.AsyncClient() as http:
        client = PinkfishClient(http, target="research", api_key=lambda: KEY)
        target = PinkfishTarget(
            "research", client, pace=SETTINGS, fetch_results=True, key_env="PF_KEY"
        )
    for code in ("API_KEY_MISSING", "INVALID_API_KEY"):
        hint = target.auth_hint(401, code)
        assert "PF_KEY (targets.research.api_key_env)" in hint
        assert "targets.research.api_key_file" in hint
    assert target.auth_hint(401, "API_KEY_MISSING").startswith("Set the Pinkfish API key")
    assert "refused the API key" in target.auth_hint(403, "HTTP_403")
    assert (target.name, target.title, target.max_refires) == ("research", "Pinkfish", 0)


# -- which runs to read, and what a read says ----------------------------------------------

SETTINGS = Pace(interval=3.0, max_interval=30.0)


def live(run_id: str, fired_at: float, checked_at: float | None = None) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        delivery_id=1,
        route="research",
        target="research",
        action="trg_hello",
        idempotency_key="research:1",
        event_id=None,
        status="running",
        fired_at=fired_at,
        last_checked_at=checked_at,
        ref="d831ue4rccbc73knbi80",
    )


def test_runs_are_read_when_due_oldest_first() -> None:
    now = START + 1000.0
    fresh = live("fresh", now - 1.0)  # fired a second ago: not yet
    young = live("young", now - 20.0, checked_at=now - 3.0)  # every 3 s while young
    young_seen = live("young_seen", now - 20.0, checked_at=now - 1.0)
    old = live("old", now - 600.0, checked_at=now - 31.0)  # every 30 s at most
    old_seen = live("old_seen", now - 600.0, checked_at=now - 20.0)
    runs = [fresh, young, young_seen, old_seen, old]
    assert [r.run_id for r in due_runs(runs, now, SETTINGS)] == ["old", "young"]
    assert [r.run_id for r in due_runs(runs, now + 3.0, SETTINGS)] == [
        "old",
        "young",
        "young_seen",
        "fresh",
    ]


def steps(status: str, *rows: tuple[str, str]) -> dict[str, Any]:
    return status_body(status, {str(i): (s, n, i) for i, (s, n) in enumerate(rows, 1)})


def test_a_complete_run_carries_its_results_as_output() -> None:
    results = fixture("results_complete")
    seen = run_read("r1", run_status(fixture("status_complete")), results)
    assert seen == RunRead(
        run_id="r1",
        status="completed",
        logs=({"step": "1", "name": "Step 1", "status": "COMPLETE", "executionOrder": 1},),
        output=results,
    )


@pytest.mark.parametrize(
    ("word", "reason"), [("FAILED", Reason.RUN_FAILED), ("TIMEOUT", Reason.RUN_TIMED_OUT)]
)
def test_a_bad_end_carries_its_steps_and_results_for_the_dead_letter(
    word: str, reason: Reason
) -> None:
    body = steps(word, ("COMPLETE", "Fetch"), (word, "Send"))
    seen = run_read("r1", run_status(body), {"results": []})
    assert run_dead_letter_reason(seen.status) is reason
    assert seen.output == {
        "stepStatus": body["stepStatus"],
        "stepInfo": body["stepInfo"],
        "results": {"results": []},
    }
    assert seen.error is not None
    assert "step 2 (Send)" in seen.error
    without = run_read("r1", run_status(body), None)
    assert without.output is not None
    assert "results" not in without.output


def test_a_live_run_has_no_output() -> None:
    seen = run_read("r1", run_status(steps("RUNNING", ("RUNNING", "Fetch"))), None)
    assert (seen.status, seen.output, seen.error) == ("running", None, None)
    assert seen.logs == ({"step": "1", "name": "Fetch", "status": "RUNNING", "executionOrder": 1},)


# -- answers the simulator never gives (httpx.MockTransport, no socket) -------------------


def answering(*responses: httpx.Response) -> httpx.AsyncClient:
    """An HTTP client whose server answers ``responses`` in order."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        return queue.pop(0)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://pf/")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200),  # no ids at all
        httpx.Response(200, headers={"X-Pf-Run-Id": "1778786207851669420"}),
        httpx.Response(202, headers={"X-Pf-Automation-Id": "d831ue4rccbc73knbi80"}),
    ],
)
async def test_a_fire_answered_2xx_without_both_ids_is_an_unknown_outcome(
    response: httpx.Response,
) -> None:
    async with answering(response) as http:
        client = PinkfishClient(http, target="research", api_key=lambda: KEY)
        target = PinkfishTarget("research", client, pace=SETTINGS, fetch_results=True)
        with pytest.raises(UnknownOutcome, match="X-Pf-") as raised:
            await target.fire(delivery())
    assert target.classify(raised.value, delivery()) is Disposition.UNKNOWN_OUTCOME


async def test_a_complete_run_whose_results_are_gone_ends_without_them() -> None:
    gone = httpx.Response(404, json={"error": "RUN_NOT_FOUND", "message": "No such run."})
    async with answering(httpx.Response(200, json=fixture("status_complete")), gone) as http:
        client = PinkfishClient(http, target="research", api_key=lambda: KEY)
        target = PinkfishTarget("research", client, pace=SETTINGS, fetch_results=True)
        seen = await target.read_run(live("r1", START), Slots(), logs=True)
    assert seen is not None
    assert (seen.status, seen.output) == ("completed", None)


def test_the_poll_bounds_must_be_in_order() -> None:
    with pytest.raises(ValidationError, match="poll_interval_seconds must not be above"):
        PinkfishConfig(kind="pinkfish", poll_interval_seconds=60.0)
    with pytest.raises(ValueError, match="at most max_interval"):
        Pace(interval=60.0, max_interval=30.0)
    assert Pace(interval=3.0, max_interval=30.0).gap(1e6) == 30.0
