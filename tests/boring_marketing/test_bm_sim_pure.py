"""The simulator's run clock and stage texts, without a server."""

from __future__ import annotations

import pytest

from brew_bridge.sim.boring_marketing.pipelines import ENDPOINTS, default_stages, stage_detail
from brew_bridge.sim.boring_marketing.runclock import CANCELED_ERROR, RunPlan, Stage, run_view

PLAN = RunPlan(
    created_at=100.0,
    queued_seconds=5.0,
    stages=(Stage("a", 10.0), Stage("b", 10.0), Stage("c", 10.0)),
    outcome="failed",
    error="boom",
    fail_stage=1,
)


def test_a_run_is_queued_then_in_each_stage_then_fails_in_its_fail_stage() -> None:
    assert run_view(PLAN, 104.9).status == "queued"
    at = [(v.status, v.stage, v.stage_started_at) for v in (run_view(PLAN, t) for t in (105, 116))]
    assert at == [("running", "a", 105.0), ("running", "b", 115.0)]
    ended = run_view(PLAN, 125.0)
    assert (ended.status, ended.stage, ended.error, ended.finished_at) == (
        "failed",
        "b",
        "boom",
        125.0,
    )
    assert run_view(PLAN, 1e9) == ended  # stage c never runs


def test_a_stuck_run_stays_where_it_was_and_a_canceled_one_fails_there() -> None:
    stuck = run_view(PLAN, 1e9, frozen_at=107.0)
    assert (stuck.status, stuck.stage, stuck.stage_started_at) == ("running", "a", 105.0)
    assert run_view(PLAN, 1e9, frozen_at=102.0).status == "queued"
    canceled = run_view(PLAN, 1e9, frozen_at=107.0, canceled_at=500.0)
    assert (canceled.status, canceled.stage, canceled.error, canceled.finished_at) == (
        "failed",
        "a",
        CANCELED_ERROR,
        500.0,
    )
    queued = run_view(PLAN, 1e9, canceled_at=101.0)
    assert (queued.status, queued.stage, queued.finished_at) == ("failed", None, 101.0)


def test_a_stuck_run_never_reaches_its_end() -> None:
    assert run_view(PLAN, 1e9, frozen_at=124.9).status == "running"
    assert run_view(PLAN, 1e9, frozen_at=124.9).stage_started_at == 115.0


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_only_analyze_has_six_stages_and_discover_none(endpoint: str) -> None:
    expected = {"analyze": 6, "discover": 0}.get(endpoint, 1)
    assert len(default_stages(endpoint)) == expected


def test_an_iterating_stage_counts_through_its_steps() -> None:
    texts = [stage_detail("evidence_collection", p) for p in (0.0, 0.5, 0.99, 1.0)]
    assert texts == [
        "analyzing SERPs for family 1 of 12",
        "analyzing SERPs for family 7 of 12",
        "analyzing SERPs for family 12 of 12",
        "analyzing SERPs for family 12 of 12",
    ]
    assert stage_detail("brief", 0.5) == "drafting the content brief"
