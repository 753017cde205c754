"""The Boring Marketing simulator's API over real HTTP, checked against seed 004's bodies."""

from __future__ import annotations

import re

import httpx
import pytest
from bm_support import (
    BRAND,
    KEY,
    OTHER_BRAND,
    OTHER_KEY,
    REVOKED_KEY,
    START,
    ManualClock,
    assert_shape,
    fire,
    fixture,
)

from brew_bridge.testing.boring_marketing import BoringMarketingSimulatorHandle
from brew_bridge.timefmt import parse_iso

SIX = [
    "brand_enrichment",
    "competitor_discovery",
    "family_discovery",
    "evidence_collection",
    "leverage_scoring",
    "queue_building",
]
# The document's endpoints and the kind of run each starts (its list of kinds).
KINDS = {
    "analyze": "full",
    "discover": "discovery",
    "enrich/brand": "brand_enrichment",
    "enrich/technical": "technical_enrichment",
    "enrich/llm": "llm_enrichment",
    "synthesize": "synthesize",
    "score": "scoring",
    "brief": "brief",
    "execute": "execution",
}


def get_run(
    client: httpx.Client, run_id: str, brand: str = BRAND, key: str = KEY
) -> httpx.Response:
    return client.get(f"/brands/{brand}/runs/{run_id}", headers={"X-API-Key": key})


def run_id_of(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def test_a_fire_is_accepted_with_a_run_id_and_the_vendors_headers(client: httpx.Client) -> None:
    fired = fire(client, "analyze", body={"note": "kickoff"})
    assert fired.status_code == 202
    body = fired.json()
    assert body == {"run_id": body["run_id"], "status": "queued"}
    assert re.fullmatch(r"[0-9a-f-]{36}", body["run_id"])
    assert re.fullmatch(r"[0-9a-f]{8}", fired.headers["x-request-id"])
    assert float(fired.headers["x-process-time"]) >= 0


@pytest.mark.parametrize(("endpoint", "kind"), KINDS.items())
def test_each_endpoint_starts_a_run_of_its_kind(
    client: httpx.Client, endpoint: str, kind: str
) -> None:
    run = get_run(client, run_id_of(fire(client, endpoint))).json()
    assert (run["kind"], run["status"], run["brand_id"]) == (kind, "queued", BRAND)


def test_a_running_run_has_the_documents_shape(client: httpx.Client, clock: ManualClock) -> None:
    run_id = run_id_of(fire(client, "analyze"))
    clock.advance(1 + 3 * 60 + 20)  # queued 1 s, then 60 s a stage: in evidence_collection
    run = get_run(client, run_id).json()
    assert_shape(run, fixture("run_running"))
    assert run["meta"]["current_stage"] == "evidence_collection"
    assert run["meta"]["stage_detail"] == "analyzing SERPs for family 5 of 12"
    assert parse_iso(run["meta"]["stage_started_at"]) == START + 1 + 3 * 60
    assert parse_iso(run["started_at"]) == START  # when it was accepted


def test_a_failed_run_has_the_documents_shape(client: httpx.Client, clock: ManualClock) -> None:
    run_id = run_id_of(fire(client, "score"))  # seeded to fail
    clock.advance(1 + 90)
    run = get_run(client, run_id).json()
    assert_shape(run, fixture("run_failed"))
    assert run["error"] == fixture("run_failed")["error"]
    assert run["meta"] == {"current_stage": "leverage_scoring"}
    assert parse_iso(run["finished_at"]) == START + 1 + 90


def test_analyze_goes_through_the_six_stages_in_order_then_done(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = run_id_of(fire(client, "analyze"))
    assert get_run(client, fired).json()["meta"] == {
        "current_stage": None,
        "stage_detail": None,
        "stage_started_at": None,
    }
    seen = []
    clock.advance(1)
    for _ in SIX:
        run = get_run(client, fired).json()
        assert run["status"] == "running"
        seen.append(run["meta"]["current_stage"])
        assert parse_iso(run["meta"]["stage_started_at"]) == clock.now
        clock.advance(60)
    assert seen == SIX
    done = get_run(client, fired).json()
    assert (done["status"], done["error"], done["meta"]) == (
        "done",
        None,
        {"current_stage": "queue_building"},
    )


def test_discover_emits_no_stage_and_single_purpose_endpoints_only_their_own(
    client: httpx.Client, clock: ManualClock, sim: BoringMarketingSimulatorHandle
) -> None:
    discovery = run_id_of(fire(client, "discover"))
    clock.advance(300)
    run = get_run(client, discovery).json()
    assert run["status"] == "running"
    assert run["meta"] == {"current_stage": None, "stage_detail": None, "stage_started_at": None}
    sim.reset()
    own = {
        "enrich/brand": "brand_enrichment",
        "score": "leverage_scoring",
        "brief": "brief",
        "execute": "execution",
        "enrich/technical": "technical_enrichment",
        "enrich/llm": "llm_enrichment",
        "synthesize": "synthesize",
    }
    for endpoint, stage in own.items():
        run_id = run_id_of(fire(client, endpoint))
        clock.advance(1.5)
        assert get_run(client, run_id).json()["meta"]["current_stage"] == stage
        clock.advance(3600)  # every one of them is over by then


def test_stage_detail_counts_up_while_stage_started_at_stays(
    client: httpx.Client, clock: ManualClock
) -> None:
    run_id = run_id_of(fire(client, "analyze"))
    clock.advance(1 + 3 * 60)
    details, starts = set(), set()
    for _ in range(6):
        meta = get_run(client, run_id).json()["meta"]
        details.add(meta["stage_detail"])
        starts.add(meta["stage_started_at"])
        clock.advance(10)
    assert len(starts) == 1
    assert len(details) == 6


def test_a_second_fire_while_a_run_is_in_progress_is_the_documents_409(
    client: httpx.Client, clock: ManualClock
) -> None:
    running = run_id_of(fire(client, "analyze"))
    refused = fire(client, "brief")
    assert refused.status_code == 409
    assert refused.json() == fixture("conflict")
    assert refused.headers["x-running-run-id"] == running
    clock.advance(1 + 6 * 60)  # the run is done: the brand is free again
    assert fire(client, "brief").status_code == 202


def test_the_list_has_the_documents_shape_newest_first_with_whole_runs(
    client: httpx.Client, clock: ManualClock
) -> None:
    first = run_id_of(fire(client, "analyze"))
    clock.advance(1 + 6 * 60)
    second = run_id_of(fire(client, "discover"))
    clock.advance(1 + 600)
    third = run_id_of(fire(client, "score"))
    clock.advance(10)
    listed = client.get(f"/brands/{BRAND}/runs", headers={"X-API-Key": KEY}).json()
    example = fixture("runs_list")
    # the document lists the oldest first; ours is newest first, as a list usually is
    assert_shape({**listed, "runs": listed["runs"][::-1]}, example, more=True)
    assert [r["id"] for r in listed["runs"]] == [third, second, first]
    assert (listed["brand_id"], listed["total"]) == (BRAND, 3)
    for entry in listed["runs"]:
        assert entry == get_run(client, entry["id"]).json()


def test_cancel_marks_a_live_run_failed_and_refuses_a_finished_one(
    client: httpx.Client, clock: ManualClock
) -> None:
    run_id = run_id_of(fire(client, "analyze"))
    clock.advance(1 + 30)
    cancel = f"/brands/{BRAND}/runs/{run_id}/cancel"
    answered = client.post(cancel, headers={"X-API-Key": KEY})
    assert answered.status_code == 200
    assert answered.json() == {"run_id": run_id, "status": "failed", "cancelled": True}
    clock.advance(600)  # it stays as it was canceled
    run = get_run(client, run_id).json()
    assert_shape(run, fixture("run_failed"))
    assert (run["status"], run["error"], run["meta"]) == (
        "failed",
        "Run cancelled via API",
        {"current_stage": "brand_enrichment"},
    )
    assert parse_iso(run["finished_at"]) == START + 31
    again = client.post(cancel, headers={"X-API-Key": KEY})
    assert (again.status_code, again.json()) == (
        400,
        {"detail": "Run is failed, not queued or running"},
    )
    assert fire(client, "analyze").status_code == 202  # the brand is free again


def test_a_stuck_run_stays_running_and_holds_the_brand_until_canceled(
    client: httpx.Client, clock: ManualClock, sim: BoringMarketingSimulatorHandle
) -> None:
    sim.put_pipeline("brief", {"queuedMs": 500, "stageMs": 30_000, "outcomes": ["stuck", "done"]})
    stuck = run_id_of(fire(client, "brief"))
    clock.advance(1)
    before = get_run(client, stuck).json()
    clock.advance(3600)
    after = get_run(client, stuck).json()
    assert after == before
    assert (after["status"], after["meta"]["current_stage"]) == ("running", "brief")
    assert fire(client, "brief").headers["x-running-run-id"] == stuck
    client.post(f"/brands/{BRAND}/runs/{stuck}/cancel", headers={"X-API-Key": KEY})
    second = run_id_of(fire(client, "brief"))  # the next in the sequence: done
    clock.advance(31)
    assert get_run(client, second).json()["status"] == "done"


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        (None, "Missing API key: send it in the X-API-Key header"),
        ("bm_not_a_key_we_know", "Invalid API key"),
        (REVOKED_KEY, "API key has been revoked"),
    ],
)
def test_a_missing_invalid_or_revoked_key_is_401(
    client: httpx.Client, key: str | None, detail: str
) -> None:
    for response in (
        fire(client, "analyze", key=key),
        client.get(f"/brands/{BRAND}/runs", headers={"X-API-Key": key} if key else {}),
    ):
        assert (response.status_code, response.json()) == (401, {"detail": detail})


def test_unknown_brands_and_runs_are_404(client: httpx.Client) -> None:
    run_id = run_id_of(fire(client, "analyze"))
    not_found = [
        fire(client, "analyze", "no-such-brand"),
        fire(client, "analyze", BRAND, key=OTHER_KEY),  # not a brand this key acts for
        get_run(client, "no-such-run"),
        get_run(client, run_id, OTHER_BRAND),  # another brand's run
        client.post(f"/brands/{BRAND}/runs/nope/cancel", headers={"X-API-Key": KEY}),
    ]
    details = [(r.status_code, r.json()) for r in not_found]
    assert details == [
        (404, {"detail": "Brand not found"}),
        (404, {"detail": "Brand not found"}),
        (404, {"detail": "Run not found"}),
        (404, {"detail": "Run not found"}),
        (404, {"detail": "Run not found"}),
    ]


def test_a_body_that_is_not_a_json_object_is_fastapis_422(client: httpx.Client) -> None:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    broken = client.post(f"/brands/{BRAND}/brief", headers=headers, content=b"{nope")
    listed = client.post(f"/brands/{BRAND}/brief", headers=headers, content=b"[1]")
    assert (broken.status_code, broken.json()["detail"][0]["type"]) == (422, "json_invalid")
    assert (listed.status_code, listed.json()["detail"][0]["type"]) == (422, "dict_type")


def test_unknown_paths_and_methods_are_fastapis_404_and_405(client: httpx.Client) -> None:
    missing = client.post(f"/brands/{BRAND}/nothing", headers={"X-API-Key": KEY})
    wrong = client.get(f"/brands/{BRAND}/analyze", headers={"X-API-Key": KEY})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"
