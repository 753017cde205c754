"""BrewClient against httpx.MockTransport: headers, envelopes, both API shapes, no socket.

Bodies are Brew's own (the fixtures copied from the 9.3.0 SDK's spec and tests, kept in
tests/sim/fixtures/brew), so a parsing mistake shows against the real wire format.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

import brew_bridge.targets.brew.client as client_module
import brew_bridge.targets.http as target_http
from brew_bridge.config import BrewConfig, RateLimit, RateLimitsConfig
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.observe.metrics import Metrics
from brew_bridge.targets.brew.client import USER_AGENT, BrewClient, build_http_client
from brew_bridge.targets.brew.wire import BREW_LIVE_STATUSES as LIVE_STATUSES
from brew_bridge.targets.brew.wire import BREW_TERMINAL_STATUSES as TERMINAL_STATUSES
from brew_bridge.targets.brew.wire import (
    FireResult,
    RunPage,
    encode_path_segment,
    error_from_response,
    normalise_status,
)

FIXTURES = Path(__file__).parents[1] / "sim" / "fixtures" / "brew"
KEY = "brew_unit_test_key_0123456789"
RID = "req_8cac13fd94e6420cacdd75a1aa403a28"

Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def answer(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return httpx.Response(status, content=content, headers={"x-request-id": RID, **(headers or {})})


class Recorder:
    """A MockTransport handler that answers from a queue and keeps every request."""

    def __init__(self, *responses: httpx.Response | Exception | Handler) -> None:
        self.queue = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            return item(request)
        return item


def make_client(recorder: Recorder | Callable[..., Any], **kwargs: Any) -> BrewClient:
    http = httpx.AsyncClient(
        base_url="http://brew.test/api/", transport=httpx.MockTransport(recorder)
    )
    kwargs.setdefault("api_key", lambda: KEY)
    return BrewClient(http, **kwargs)


# -- headers, paths, the request body -----------------------------------------------------


async def test_fire_sends_the_contract_headers_and_body() -> None:
    rec = Recorder(answer(200, fixture("sdk-9.3.0-dts/fire_200_triggered.json")))
    client = make_client(rec, brand_id="kx7b3s7fapqz8mjm12ekz1kxdx87yceg")
    result = await client.fire("tri_signup", {"email": "jane@example.com"}, "signup:42")
    request = rec.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/api/v1/automations/triggers/tri_signup/fire"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("brew-bridge/")
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-brand-id"] == "kx7b3s7fapqz8mjm12ekz1kxdx87yceg"
    assert request.headers["idempotency-key"] == "signup:42"
    # The key travels in the header only: 10.x bodies refuse the legacy field.
    assert json.loads(request.content) == {"payload": {"email": "jane@example.com"}}
    assert result == FireResult("triggered", "TRIGGERED", "tin_8f2k", ("run_01HZ",), RID)


async def test_reads_send_no_body_headers_and_no_brand_unless_configured() -> None:
    rec = Recorder(answer(200, fixture("sdk-9.3.0-dts/runs_list_200.json")))
    await make_client(rec).list_runs(trigger_event_id="tri_signup", limit=50)
    request = rec.requests[0]
    assert "content-type" not in request.headers
    assert "idempotency-key" not in request.headers
    assert "x-brand-id" not in request.headers
    assert dict(request.url.params) == {"limit": "50", "triggerEventId": "tri_signup"}


async def test_composite_trigger_ids_are_encoded_like_encode_uri_component() -> None:
    rec = Recorder(answer(200, fixture("sdk-9.3.0-dts/fire_200_triggered.json")))
    await make_client(rec).fire("clerk:org_1:brand_1:user.created", {"email": "a@b.c"}, "k")
    assert rec.requests[0].url.raw_path == (
        b"/api/v1/automations/triggers/clerk%3Aorg_1%3Abrand_1%3Auser.created/fire"
    )
    assert encode_path_segment("a b/c:d!*'()~") == "a%20b%2Fc%3Ad!*'()~"


async def test_the_key_is_read_for_every_request() -> None:
    keys = iter(["brew_old_key_1234", "brew_new_key_5678"])
    rec = Recorder(
        answer(200, fixture("sdk-9.3.0-dts/runs_list_200.json")),
        answer(200, fixture("sdk-9.3.0-dts/runs_list_200.json")),
    )
    client = make_client(rec, api_key=lambda: next(keys) + "\n")  # a file's trailing newline
    await client.list_runs()
    await client.list_runs()
    assert [r.headers["authorization"] for r in rec.requests] == [
        "Bearer brew_old_key_1234",
        "Bearer brew_new_key_5678",
    ]


@pytest.mark.parametrize(
    "key", [lambda: "", lambda: "   ", lambda: (_ for _ in ()).throw(OSError())]
)
async def test_no_usable_key_is_an_auth_error_and_nothing_is_sent(
    key: Callable[[], str],
) -> None:
    rec = Recorder()
    with pytest.raises(AuthError) as caught:
        await make_client(rec, api_key=key).fire("tri_x", {"email": "a@b.c"}, "k")
    assert caught.value.code == "API_KEY_MISSING"
    assert "BREW_API_KEY" in (caught.value.suggestion or "")
    assert rec.requests == []


@pytest.mark.parametrize("key", ["", "x" * 101])
async def test_idempotency_key_length_is_checked(key: str) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        await make_client(Recorder()).fire("tri_x", {"email": "a@b.c"}, key)


def test_build_http_client_from_config() -> None:
    config = BrewConfig(
        base_url="http://sim.local:8787/api/",
        timeout_seconds=7.0,
        connect_timeout_seconds=2.0,
        max_connections=3,
    )
    http = build_http_client(config)
    try:
        assert str(http.base_url) == "http://sim.local:8787/api/"
        assert http.timeout == httpx.Timeout(7.0, connect=2.0)
        assert http.headers["user-agent"] == USER_AGENT
    finally:
        asyncio.run(http.aclose())


# -- error envelopes ------------------------------------------------------------------------


STANDARD = [
    ("sdk-9.3.0-dts/error_401_invalid_api_key.json", 401, AuthError),
    ("sdk-9.3.0-dts/error_403_insufficient_permissions.json", 403, AuthError),
    ("sdk-9.3.0-dts/error_409_idempotency_conflict.json", 409, ApiError),
    ("sdk-9.3.0-dts/error_429_rate_limited.json", 429, RateLimited),
    ("sdk-9.3.0-dts/error_500_internal_error.json", 500, ApiError),
    ("sdk-9.3.0-dts/runs_404_automation_run_not_found.json", 404, ApiError),
    ("sdk-9.3.0-dts/runs_list_400_invalid_request.json", 400, ApiError),
    ("github-tests/error_402_insufficient_credits.json", 402, ApiError),
    ("github-tests/error_409_with_details.json", 409, ApiError),
    ("github-tests/error_503_service_unavailable.json", 503, ApiError),
    ("github-tests/runs_cancel_409_run_not_cancellable.json", 409, ApiError),
]


@pytest.mark.parametrize(("name", "status", "cls"), STANDARD)
async def test_standard_envelopes_keep_every_field(
    name: str, status: int, cls: type[ApiError]
) -> None:
    body = fixture(name)
    rec = Recorder(answer(status, body))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).list_runs()
    err, env = caught.value, body["error"]
    assert type(err) is cls
    assert (err.status, err.code, err.type, err.message) == (
        status,
        env["code"],
        env["type"],
        env["message"],
    )
    assert (err.param, err.suggestion, err.docs) == (
        env.get("param"),
        env["suggestion"],
        env["docs"],
    )
    assert err.retry_after == env.get("retryAfter")
    assert err.details == env.get("details")
    assert err.request_id == RID
    assert err.body == body
    assert err.envelope()["requestId"] == RID


def test_body_retry_after_beats_the_header_and_the_header_fills_in() -> None:
    body = fixture("github-tests/error_429_rate_limited_body_retryAfter.json")
    err = error_from_response(429, body, httpx.Headers({"retry-after": "10"}))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 42
    body["error"].pop("retryAfter")
    assert error_from_response(429, body, httpx.Headers({"Retry-After": "10"})).retry_after == 10
    body503 = fixture("github-tests/error_503_service_unavailable.json")
    assert error_from_response(503, body503, httpx.Headers({"retry-after": "5"})).retry_after == 5
    date = httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert error_from_response(503, body503, date).retry_after is None


LEGACY = [
    ("sdk-9.3.0-dts/fire_400_payload_mismatch.json", 400, "invalid_request"),
    ("github-tests/fire_400_payload_mismatch_INVALID_PAYLOAD.json", 400, "invalid_request"),
    ("sdk-9.3.0-dts/fire_404_trigger_event_not_found.json", 404, "not_found"),
    ("sdk-9.3.0-dts/fire_422_no_published_automation.json", 422, "invalid_request"),
]


@pytest.mark.parametrize(("name", "status", "kind"), LEGACY)
async def test_legacy_fire_envelopes(name: str, status: int, kind: str) -> None:
    body = fixture(name)
    rec = Recorder(answer(status, body, {"retry-after": "3"}))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).fire("tri_signup", {"email": "a@b.c"}, "k1")
    err = caught.value
    assert (err.status, err.code, err.type, err.message) == (
        status,
        body["code"],
        kind,
        body["message"],
    )
    assert str(err.docs).endswith("fire-a-trigger")
    assert str(err.suggestion).startswith("Fix the request")
    assert err.retry_after == 3  # the legacy envelope has none: the header's
    assert err.details == body.get("details")
    assert err.param is None
    assert err.body["status"] == body["status"]


@pytest.mark.parametrize("case", fixture("github-tests/fire_legacy_refusal_table.json")["cases"])
def test_the_sdk_refusal_table(case: dict[str, Any]) -> None:
    err = error_from_response(case["httpStatus"], case["body"], httpx.Headers())
    assert err.code == case["body"]["code"]
    assert err.type == case["sdkType"]
    assert isinstance(err, AuthError) == (case["httpStatus"] == 403)


@pytest.mark.parametrize(
    ("status", "raw", "kind"),
    [
        (502, b"<html>Bad Gateway</html>", "internal_error"),
        (503, b"", "service_unavailable"),
        (
            500,
            json.dumps({"success": True, "code": "X", "message": "m"}).encode(),
            "internal_error",
        ),
        (400, json.dumps({"error": {"code": 5, "message": "m"}}).encode(), "invalid_request"),
        (429, b"null", "rate_limit"),
    ],
)
def test_bodies_that_are_neither_fall_back_to_the_status(
    status: int, raw: bytes, kind: str
) -> None:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    err = error_from_response(status, body, httpx.Headers({"x-request-id": RID}))
    assert (err.code, err.type, err.message) == (
        "unknown_error",
        kind,
        f"Request failed with status {status}",
    )
    assert err.request_id == RID


def test_an_envelope_missing_suggestion_and_docs_keeps_its_code() -> None:
    # The post-9.3.0 fixture gives only code/type/message; the retry decision needs the code.
    body = fixture("github-tests/post-9.3.0/v11_409_idempotency_in_progress.json")
    err = error_from_response(409, body, httpx.Headers())
    assert (err.code, err.type) == ("IDEMPOTENCY_IN_PROGRESS", "conflict")
    odd = {"error": {"code": "X_CODE", "type": "made_up", "message": "m"}}
    assert error_from_response(418, odd, httpx.Headers()).type == "invalid_request"


async def test_an_unparsable_error_body_through_the_client() -> None:
    rec = Recorder(answer(502, raw=b"<html>upstream</html>"))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).get_run("run_1")
    assert caught.value.code == "unknown_error"
    assert caught.value.status == 502


# -- fire answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            fixture("github-tests/fire_200_triggered.json"),
            FireResult("triggered", "TRIGGERED", "tin_01HZ", ("run_a",), RID),
        ),
        (
            fixture("github-tests/fire_200_triggered_minimal_details.json"),
            FireResult("triggered", "TRIGGERED", None, ("run_b",), RID),
        ),
        # The seeds' flat body (legacy-pre-v8/v4_post_automation_runs_fire_200.json) and 10.x.
        (
            {
                "triggerInstanceId": "tin_01HZ",
                "automationRunIds": ["run_a"],
                "status": "triggered",
                "counts": {"automations": 1, "transactionalEmails": 0},
                "receivedAt": "2026-04-08T12:34:56.789Z",
            },
            FireResult("triggered", "TRIGGERED", "tin_01HZ", ("run_a",), RID),
        ),
        (
            {
                "success": True,
                "status": "idempotent_replay",
                "code": "IDEMPOTENT_REPLAY",
                "message": "m",
                "receivedAt": "x",
                "details": {"automationRunIds": ["run_a", "run_b"], "triggerInstanceId": "tin_1"},
            },
            FireResult("idempotent_replay", "IDEMPOTENT_REPLAY", "tin_1", ("run_a", "run_b"), RID),
        ),
    ],
)
async def test_fire_success_in_both_generations(body: Any, expected: FireResult) -> None:
    assert await make_client(Recorder(answer(200, body))).fire("tri_x", {}, "k") == expected


async def test_a_bare_fire_body_switches_auto_to_10() -> None:
    body = {
        "triggerInstanceId": "tin_1",
        "triggerEventId": "tri_x",
        "status": "triggered",
        "automationRunIds": ["run_1"],
        "publishedAutomations": [],
        "counts": {},
        "warnings": [],
        "receivedAt": "x",
    }
    client = make_client(Recorder(answer(200, body)))
    await client.fire("tri_x", {}, "k")
    assert client.api_shape == "10"


async def test_a_200_that_is_not_a_fire_success_is_an_error() -> None:
    rec = Recorder(answer(200, fixture("sdk-9.3.0-dts/fire_get_200_ready.json")))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).fire("tri_signup", {}, "k")
    assert (caught.value.status, caught.value.code) == (200, "TRIGGER_EVENT_READY")
    assert "'ready'" in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"success": True, "status": "triggered", "code": "TRIGGERED"}).encode(),
    ],
)
async def test_an_unreadable_2xx_is_an_unknown_outcome(raw: bytes) -> None:
    # Brew may have fired: firing again with the same key replays the answer.
    with pytest.raises(UnknownOutcome):
        await make_client(Recorder(answer(200, raw=raw))).fire("tri_x", {}, "k")


# -- transport failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), TransportError),
        (httpx.ConnectTimeout("slow"), TransportError),
        (httpx.PoolTimeout("busy"), TransportError),
        (httpx.ReadTimeout("hang"), UnknownOutcome),
        (httpx.WriteTimeout("hang"), UnknownOutcome),
        (httpx.ReadError("reset"), UnknownOutcome),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            UnknownOutcome,
        ),
        (httpx.DecodingError("bad gzip"), UnknownOutcome),
    ],
)
async def test_no_answer_is_sent_or_unknown(exc: Exception, cls: type[Exception]) -> None:
    metrics = Metrics()
    with pytest.raises(TransportError) as caught:
        await make_client(Recorder(exc), metrics=metrics).fire("tri_x", {}, "k")
    assert type(caught.value) is cls
    assert caught.value.__cause__ is exc
    assert (
        metrics.registry.get_sample_value(
            "brew_bridge_http_requests_total",
            {"target": "brew", "endpoint": "fire", "status": "error"},
        )
        == 1
    )


async def test_a_cancelled_request_settles_its_budget_slot() -> None:
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(30)
        return answer(200, {})

    budgets = RateBudgets(RateLimitsConfig())
    task = asyncio.create_task(make_client(hang, budgets=budgets).fire("tri_x", {}, "k"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    window = budgets.window("fire")
    assert window.used(time.time()) == 1  # counted from the cancel: it may have been sent
    assert not window._unsettled


async def test_the_attempt_timeout_covers_the_whole_answer() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return answer(200, {})

    client = make_client(slow, attempt_timeout=0.1)
    with pytest.raises(UnknownOutcome, match="timed out after the request was sent"):
        await client.fire("tri_x", {}, "k")


# -- runs ---------------------------------------------------------------------------------


def test_statuses() -> None:
    assert normalise_status("queued") == "pending"
    assert normalise_status("cancelled") == "canceled"
    assert normalise_status("partially_completed") == "partially_completed"
    assert {"pending", "queued", "scheduled", "running", "paused"} == LIVE_STATUSES
    assert {"completed", "partially_completed", "failed", "canceled", "cancelled"} == (
        TERMINAL_STATUSES
    )


async def test_list_runs_pages_and_normalises() -> None:
    page1 = {
        "data": [
            {
                "automationRunId": "run_2",
                "automationId": "auto_1",
                "mode": "live",
                "status": "queued",
                "triggerInstanceId": "tin_1",
            },
            {
                "automationRunId": "run_1",
                "automationId": "auto_1",
                "mode": "live",
                "status": "cancelled",
                "startedAt": "2026-04-08T12:34:56.789Z",
                "completedAt": "2026-04-08T12:35:00.000Z",
                "error": "stopped",
            },
        ],
        "pagination": {"limit": 2, "cursor": "c_2", "hasMore": True},
    }
    rec = Recorder(answer(200, page1), answer(200, fixture("sdk-9.3.0-dts/runs_list_200.json")))
    client = make_client(rec)
    first = await client.list_runs(
        trigger_event_id="tri_x", from_="2026-04-08T00:00:00Z", status="cancelled", limit=2
    )
    assert [(r.run_id, r.status) for r in first.runs] == [
        ("run_2", "pending"),
        ("run_1", "canceled"),
    ]
    assert first.runs[1].error == "stopped"
    assert first.runs[0].trigger_instance_id == "tin_1"
    assert (first.cursor, first.has_more) == ("c_2", True)
    second = await client.list_runs(cursor=first.cursor)
    assert (second.cursor, second.has_more) == (None, False)
    assert second.runs[0].status == "completed"
    assert rec.requests[0].url.params["status"] == "canceled"  # one L on the wire
    assert rec.requests[0].url.params["from"] == "2026-04-08T00:00:00Z"
    assert rec.requests[1].url.params["cursor"] == "c_2"


async def test_the_seeds_runs_envelope_is_read_too() -> None:
    # legacy-pre-v8/v4_get_automation_runs_list_200.json and ..._detail_logs_200.json
    rec = Recorder(
        answer(200, {"runs": [], "pagination": {"limit": 25, "hasMore": False}}),
        answer(
            200,
            {
                "runs": [
                    {
                        "automationRunId": "run_a",
                        "automationId": "auto_abc",
                        "mode": "live",
                        "status": "completed",
                    }
                ],
                "logs": [{"nodeId": "trg", "status": "success"}],
            },
        ),
    )
    client = make_client(rec)
    assert await client.list_runs() == RunPage((), None, False)
    run = await client.get_run("run_a", include_logs=True)
    assert run.logs == ({"nodeId": "trg", "status": "success"},)


async def test_get_run_9_3_detail_with_logs() -> None:
    rec = Recorder(answer(200, fixture("github-tests/runs_detail_include_logs_200.json")))
    run = await make_client(rec, api_shape="9.3").get_run("run_a", include_logs=True)
    assert dict(rec.requests[0].url.params) == {"automationRunId": "run_a", "include": "logs"}
    assert run.run_id == "run_a"
    assert run.automation_id == "auto_abc"
    assert run.status == "completed"
    assert run.logs is not None
    assert run.logs[0]["nodeType"] == "trigger"


async def test_an_empty_detail_page_is_a_404() -> None:
    rec = Recorder(answer(200, {"data": []}))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).get_run("run_zz")
    assert (caught.value.status, caught.value.code) == (404, "AUTOMATION_RUN_NOT_FOUND")


REFUSED = {
    "error": {
        "code": "INVALID_REQUEST",
        "type": "invalid_request",
        "message": "Read one run with GET /v1/automations/runs/{automationRunId}.",
        "suggestion": "Fix the field reported in `param` and retry.",
        "docs": "https://docs.brew.new/api-reference/api/errors",
        "param": "automationRunId",
    }
}
BARE_ROW = {
    "automationRunId": "run/1",
    "automationId": "auto_1",
    "mode": "live",
    "status": "partially_completed",
    "logs": [],
}


async def test_auto_switches_to_run_paths_when_the_filter_is_refused() -> None:
    rec = Recorder(answer(400, REFUSED), answer(200, BARE_ROW), answer(200, BARE_ROW))
    client = make_client(rec)
    run = await client.get_run("run/1", include_logs=True)
    assert run.status == "partially_completed"
    assert run.logs == ()
    assert client.api_shape == "10"
    await client.get_run("run/1")
    paths = [(r.url.raw_path.decode()) for r in rec.requests]
    assert paths == [
        "/api/v1/automations/runs?automationRunId=run%2F1&include=logs",
        "/api/v1/automations/runs/run%2F1?include=logs",
        "/api/v1/automations/runs/run%2F1",  # straight there from now on
    ]


async def test_auto_asks_a_10_server_for_queued_runs() -> None:
    refused = {"error": {**REFUSED["error"], "param": "status"}}
    rec = Recorder(answer(400, refused), answer(200, {"data": [], "pagination": {}}))
    client = make_client(rec)
    await client.list_runs(status="pending")
    assert [r.url.params["status"] for r in rec.requests] == ["pending", "queued"]
    assert client.api_shape == "10"


async def test_a_pinned_9_3_client_does_not_switch() -> None:
    client = make_client(Recorder(answer(400, REFUSED)), api_shape="9.3")
    with pytest.raises(ApiError, match="INVALID_REQUEST"):
        await client.get_run("run_1")
    assert client.api_shape == "9.3"


async def test_a_pinned_10_client_reads_by_path() -> None:
    rec = Recorder(answer(200, BARE_ROW))
    await make_client(rec, api_shape="10").get_run("run_1")
    assert rec.requests[0].url.path == "/api/v1/automations/runs/run_1"


def test_api_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="api_shape"):
        make_client(Recorder(), api_shape="11")


# -- cancel and triggers ----------------------------------------------------------------------


async def test_cancel_9_3_patch_and_10_post() -> None:
    rec = Recorder(answer(200, fixture("github-tests/runs_cancel_200.json")))
    out = await make_client(rec, api_shape="9.3").cancel_run("run_1", reason="wrong audience")
    assert out["previousStatus"] == "running"
    assert rec.requests[0].method == "PATCH"
    assert json.loads(rec.requests[0].content) == fixture("github-tests/runs_cancel_request.json")
    rec10 = Recorder(answer(200, fixture("github-tests/runs_cancel_200.json")))
    await make_client(rec10, api_shape="10").cancel_run("run_1")
    assert (rec10.requests[0].method, rec10.requests[0].url.path) == (
        "POST",
        "/api/v1/automations/runs/run_1/cancel",
    )
    assert json.loads(rec10.requests[0].content) == {}


async def test_cancel_on_auto_follows_a_405() -> None:
    not_allowed = {
        "error": {
            "code": "METHOD_NOT_ALLOWED",
            "type": "invalid_request",
            "message": "PATCH is not allowed here; use GET.",
            "suggestion": "s",
            "docs": "d",
        }
    }
    rec = Recorder(
        answer(405, not_allowed), answer(200, fixture("github-tests/runs_cancel_200.json"))
    )
    client = make_client(rec)
    await client.cancel_run("run_1")
    assert [r.method for r in rec.requests] == ["PATCH", "POST"]
    assert client.api_shape == "10"


async def test_cancel_conflict_is_raised() -> None:
    rec = Recorder(answer(409, fixture("github-tests/runs_cancel_409_run_not_cancellable.json")))
    with pytest.raises(ApiError) as caught:
        await make_client(rec).cancel_run("run_1")
    assert caught.value.code == "RUN_NOT_CANCELLABLE"


async def test_check_ready_in_both_shapes() -> None:
    rec = Recorder(answer(200, fixture("sdk-9.3.0-dts/fire_get_200_ready.json")))
    ready = await make_client(rec, api_shape="9.3").check_ready("tri_signup")
    assert ready["ready"] is True
    assert ready["code"] == "TRIGGER_EVENT_READY"
    assert rec.requests[0].method == "GET"
    assert rec.requests[0].url.path == "/api/v1/automations/triggers/tri_signup/fire"
    body10 = fixture("github-tests/post-9.3.0/v10_get_readiness_not_ready.json")
    rec10 = Recorder(answer(200, body10))
    assert await make_client(rec10, api_shape="10").check_ready("tri_abc") == body10
    assert rec10.requests[0].url.path == "/api/v1/automations/triggers/tri_abc/readiness"


async def test_get_trigger_in_both_shapes() -> None:
    rec = Recorder(answer(200, fixture("github-tests/triggers_detail_200.json")))
    row = await make_client(rec, api_shape="9.3").get_trigger("tri_abc")
    assert row["title"] == "Password Reset"
    assert dict(rec.requests[0].url.params) == {"triggerEventId": "tri_abc"}
    bare = fixture("github-tests/post-9.3.0/v10_get_trigger_detail_bare_row_with_skill.json")
    rec10 = Recorder(answer(200, bare))
    assert await make_client(rec10, api_shape="10").get_trigger("tri_abc") == bare
    assert rec10.requests[0].url.path == "/api/v1/automations/triggers/tri_abc"


# -- metrics, budgets, logs -------------------------------------------------------------------


async def test_metrics_and_budgets_follow_every_answer() -> None:
    metrics = Metrics()
    budgets = RateBudgets(RateLimitsConfig(fire=RateLimit(limit=5, window_seconds=60)), metrics)
    reset = str(int(time.time()) + 60)
    ok = answer(
        200,
        fixture("sdk-9.3.0-dts/fire_200_triggered.json"),
        {"x-ratelimit-limit": "5", "x-ratelimit-remaining": "4", "x-ratelimit-reset": reset},
    )
    limited = answer(
        429,
        fixture("sdk-9.3.0-dts/error_429_rate_limited.json"),
        {
            "retry-after": "10",
            "x-ratelimit-limit": "5",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": reset,
        },
    )
    client = make_client(Recorder(ok, limited), metrics=metrics, budgets=budgets)
    await client.fire("tri_x", {}, "k")
    sample = metrics.registry.get_sample_value
    assert sample("brew_bridge_rate_budget_remaining", {"target": "brew", "policy": "fire"}) == 4
    with pytest.raises(RateLimited):
        await client.fire("tri_x", {}, "k")
    assert (
        sample(
            "brew_bridge_http_requests_total",
            {"target": "brew", "endpoint": "fire", "status": "200"},
        )
        == 1
    )
    assert (
        sample(
            "brew_bridge_http_requests_total",
            {"target": "brew", "endpoint": "fire", "status": "429"},
        )
        == 1
    )
    assert (
        sample(
            "brew_bridge_http_request_duration_seconds_count",
            {"target": "brew", "endpoint": "fire"},
        )
        == 2
    )
    assert (
        sample("brew_bridge_rate_budget_wait_seconds_count", {"target": "brew", "policy": "fire"})
        == 2
    )
    assert sample("brew_bridge_rate_budget_remaining", {"target": "brew", "policy": "fire"}) == 0
    # The 429 blocks the fire policy for the body's retryAfter (42 s), not the header's 10.
    now = time.time()
    assert budgets.window("fire").try_acquire(now + 41) == pytest.approx(1.0, abs=0.5)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the client (and the one HTTP attempt it makes per call) logs, whatever
    structlog's global configuration is."""
    capture = structlog.testing.LogCapture()
    for module in (client_module, target_http):
        monkeypatch.setattr(module, "log", structlog.wrap_logger(None, processors=[capture]))
    return capture.entries


async def test_the_key_never_reaches_logs_or_errors(logs: list[dict[str, Any]]) -> None:
    rec = Recorder(
        answer(401, fixture("sdk-9.3.0-dts/error_401_invalid_api_key.json")),
        httpx.ReadTimeout("hang"),
    )
    client = make_client(rec)
    with pytest.raises(AuthError) as auth:
        await client.fire("tri_x", {}, "k")
    with pytest.raises(UnknownOutcome) as unknown:
        await client.fire("tri_x", {}, "k")
    assert logs, "the client logs its answers"
    assert any(entry.get("request_id") == RID for entry in logs)
    text = repr(logs) + str(auth.value) + repr(auth.value.envelope()) + str(unknown.value)
    assert KEY not in text
