"""The Boring Marketing target's pure parts: wire format, classification, stuck runs,
poll planning and stage counts."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from bm_support import START, fixture

from brew_bridge.config.targets import PIPELINES
from brew_bridge.core.retry import Disposition
from brew_bridge.errors import (
    ApiError,
    AuthError,
    RateLimited,
    TargetError,
    TransportError,
    UnknownOutcome,
)
from brew_bridge.events import LIVE_STATUSES, TERMINAL_STATUSES
from brew_bridge.sim.boring_marketing.pipelines import ENDPOINTS
from brew_bridge.targets.boring_marketing import classify, pipeline_problem
from brew_bridge.targets.boring_marketing.pollplan import PollSettings, is_due, plan_poll
from brew_bridge.targets.boring_marketing.stages import stage_counts
from brew_bridge.targets.boring_marketing.stuck import stuck_reason
from brew_bridge.targets.boring_marketing.wire import (
    STATUSES,
    BmRun,
    brand_of,
    error_of,
    fire_body,
    run_of,
    running_run_id,
    runs_of,
)
from brew_bridge.targets.http import Unreadable


def api_error(status: int) -> ApiError:
    return error_of(status, {"detail": "x"}, httpx.Headers())


@pytest.mark.parametrize(
    ("outcome", "disposition"),
    [
        (api_error(401), Disposition.AUTH),
        (api_error(403), Disposition.AUTH),
        (api_error(408), Disposition.RETRY),
        (api_error(409), Disposition.RETRY),  # a 409 without X-Running-Run-Id
        (api_error(429), Disposition.RETRY),
        (api_error(500), Disposition.RETRY),
        (api_error(503), Disposition.RETRY),
        (api_error(400), Disposition.REJECT),
        (api_error(404), Disposition.REJECT),  # a brand the payload named
        (api_error(422), Disposition.REJECT),
        (TransportError("not sent"), Disposition.RETRY),
        (UnknownOutcome("sent, no answer"), Disposition.RETRY),  # re-running is idempotent
        (TargetError("?"), Disposition.REJECT),
        (RuntimeError("a bug"), Disposition.RETRY),
        (KeyboardInterrupt(), Disposition.REJECT),
    ],
)
def test_classify(outcome: BaseException, disposition: Disposition) -> None:
    assert classify(outcome) is disposition


def test_error_of_types_the_answers_and_keeps_what_they_say() -> None:
    headers = httpx.Headers({"x-request-id": "ab12cd34", "retry-after": "7"})
    auth = error_of(401, {"detail": "Invalid API key"}, headers)
    limited = error_of(429, {"detail": "Rate limit exceeded"}, headers)
    assert isinstance(auth, AuthError)
    assert (auth.code, auth.message, auth.request_id) == (
        "UNAUTHORIZED",
        "Invalid API key",
        "ab12cd34",
    )
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.0
    invalid = error_of(422, {"detail": [{"loc": ["body"], "msg": "bad"}]}, httpx.Headers())
    assert (invalid.code, invalid.message) == (
        "UNPROCESSABLE_ENTITY",
        '[{"loc":["body"],"msg":"bad"}]',
    )
    bare = error_of(502, None, httpx.Headers())
    assert (bare.code, bare.message) == ("BAD_GATEWAY", "Boring Marketing answered 502")


def test_a_409_keeps_the_run_in_progress() -> None:
    conflict = error_of(409, fixture("conflict"), httpx.Headers({"X-Running-Run-Id": "run-7"}))
    assert (conflict.code, conflict.message) == (
        "RUN_IN_PROGRESS",
        "A run is already in progress for this brand",
    )
    assert running_run_id(conflict) == "run-7"
    assert running_run_id(error_of(409, fixture("conflict"), httpx.Headers())) is None


def test_the_brand_is_the_payloads_else_the_configured_one() -> None:
    assert brand_of({"brand_id": "b-1", "x": 1}, "b-0") == "b-1"
    assert brand_of({"x": 1}, "b-0") == "b-0"
    assert brand_of({"brand_id": None}, "b-0") == "b-0"
    assert brand_of({"x": 1}, None) is None
    assert brand_of({"brand_id": ""}, "b-0") is None
    assert brand_of({"brand_id": 7}, "b-0") is None
    assert fire_body({"brand_id": "b-1", "format": "comparison"}) == {"format": "comparison"}


def test_the_nine_endpoints_and_nothing_else_are_pipelines() -> None:
    for endpoint in ("analyze", "discover", "enrich/brand", "enrich/technical", "enrich/llm"):
        assert pipeline_problem(endpoint) is None
    for endpoint in ("synthesize", "score", "brief", "execute"):
        assert pipeline_problem(endpoint) is None
    problem = pipeline_problem("discover-competitors")
    assert problem is not None
    assert problem.startswith("'discover-competitors' is not a Boring Marketing pipeline")


def test_the_documents_statuses_are_the_bridges() -> None:
    assert {STATUSES["queued"], STATUSES["running"]} <= LIVE_STATUSES
    assert {STATUSES["done"], STATUSES["failed"]} <= TERMINAL_STATUSES


def test_a_run_object_reads_as_the_bridge_records_it() -> None:
    running = run_of(fixture("run_running"))
    assert (running.status, running.stage, running.stage_started_at, running.has_meta) == (
        "running",
        "evidence_collection",
        START + 6 * 60 + 42,
        True,
    )
    failed = run_of(fixture("run_failed")).run_read()
    assert (failed.status, failed.error, failed.ended_at) == (
        "failed",
        "DataForSEO rate limit exceeded — retry in 60 seconds",
        START + 12 * 60,
    )
    assert failed.logs == ({"kind": "full", "stage": "evidence_collection", "detail": None},)


def test_the_documents_list_entries_read_without_meta() -> None:
    runs = runs_of(fixture("runs_list"))
    assert [(r.run_id, r.status, r.has_meta) for r in runs] == [
        ("run-1", "completed", False),
        ("run-2", "completed", False),
        ("run-3", "running", False),
    ]
    assert (
        runs_of({"runs": [{"id": "ok", "status": "done"}, {"status": "done"}, 7]})[0].run_id == "ok"
    )
    with pytest.raises(Unreadable):
        runs_of({"brand_id": "b", "total": 0})


def bm(
    status: str = "running", *, started: float | None = START, stage_at: float | None = None
) -> BmRun:
    return BmRun(
        run_id="r",
        status=STATUSES.get(status, status),
        kind="full",
        error=None,
        started_at=started,
        finished_at=None,
        stage="family_discovery" if stage_at is not None else None,
        stage_detail=None,
        stage_started_at=stage_at,
        has_meta=True,
    )


def test_a_run_is_stuck_when_its_stage_has_not_moved_for_longer_than_the_limit() -> None:
    in_stage = bm(stage_at=START + 100)
    assert stuck_reason(in_stage, START + 100 + 900, 900) is None
    reason = stuck_reason(in_stage, START + 100 + 901, 900)
    assert reason is not None
    assert reason.startswith("stuck: no stage progress for 901 s (in stage family_discovery since")
    # without a stage, its age counts (queued, or /discover)
    assert stuck_reason(bm("queued"), START + 901, 900) is not None
    assert stuck_reason(bm("queued"), START + 899, 900) is None
    # a run at its end, or one with no time to judge by, is never stuck
    assert stuck_reason(bm("done", stage_at=START), START + 10_000, 900) is None
    assert stuck_reason(bm(started=None), START + 10_000, 900) is None


@dataclass(frozen=True)
class Live:
    run_id: str
    action: str
    ref: str | None
    fired_at: float
    last_checked_at: float | None = None


def test_full_pipeline_runs_are_checked_every_10_s_the_others_every_5_s() -> None:
    settings = PollSettings()
    analyze, brief = Live("a", "analyze", "b", START), Live("s", "brief", "b", START)
    assert not is_due(brief, START + 4.4, settings)
    assert is_due(brief, START + 4.5, settings)  # a check may come a tenth early
    assert not is_due(analyze, START + 8.9, settings)
    assert is_due(analyze, START + 9.0, settings)
    checked = Live("d", "discover", "b", START, last_checked_at=START + 30)
    assert not is_due(checked, START + 35, settings)
    assert is_due(checked, START + 40, settings)


def test_one_read_per_brand_with_a_due_run_oldest_due_first() -> None:
    runs = [
        Live("new", "brief", "b1", START + 20),
        Live("old", "brief", "b1", START + 0.5),
        Live("fresh", "brief", "b2", START + 28),  # not due: b2 is not read
        Live("other", "score", "b3", START + 10),
        Live("mine", "analyze", None, START + 1),  # no ref: the configured brand's
        Live("lost", "analyze", None, START),
    ]
    reads = plan_poll(runs, START + 30, PollSettings(), "b0")
    assert [(r.brand_id, r.due) for r in reads] == [
        ("b0", ("lost", "mine")),
        ("b1", ("old", "new")),
        ("b3", ("other",)),
    ]
    assert reads[1].run_ids == {"new", "old"}
    assert [r.brand_id for r in plan_poll(runs, START + 30, PollSettings(), None)] == ["b1", "b3"]


def test_stages_are_counted_with_brands_only_when_asked() -> None:
    seen = [("evidence_collection", "b1"), ("evidence_collection", "b2"), ("none", "b1")]
    assert stage_counts(seen, by_brand=False) == {("evidence_collection",): 2, ("none",): 1}
    assert stage_counts(seen, by_brand=True) == {
        ("evidence_collection", "b1"): 1,
        ("evidence_collection", "b2"): 1,
        ("none", "b1"): 1,
    }


def test_the_simulator_and_the_bridge_agree_on_the_endpoints_and_their_kinds() -> None:
    assert dict(ENDPOINTS) == PIPELINES
