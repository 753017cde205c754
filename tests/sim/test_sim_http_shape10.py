"""``--api-shape 10``: the newer shapes of brew-api.md §11, over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import SCHEMA, TEST_SEED, assert_shape, fire, fixture, poll

from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

RUNS = "/v1/automations/runs"
BARE_FIRE_KEYS = [
    "triggerInstanceId",
    "triggerEventId",
    "status",
    "automationRunIds",
    "publishedAutomations",
    "counts",
    "warnings",
    "receivedAt",
]
SEED_10: dict[str, Any] = {
    **TEST_SEED,
    "apiShape": "10",
    "triggers": {
        **TEST_SEED["triggers"],
        "tri_slow": {  # queued for a minute: seen queued however slow the machine
            "payloadSchema": SCHEMA,
            "automations": [
                {"automationId": "auto_slow", "durationMs": 600_000, "pendingMs": 60_000}
            ],
        },
        "tri_partial": {
            "payloadSchema": SCHEMA,
            "automations": [
                {
                    "automationId": "auto_partial",
                    "outcome": "partially_completed",
                    "durationMs": 200,
                    "pendingMs": 50,
                }
            ],
        },
    },
}


@pytest.fixture
def sim10(sim: SimulatorHandle) -> SimulatorHandle:
    sim.reset(SEED_10)
    return sim


def get_run(client: httpx.Client, run_id: str, logs: bool = False) -> dict[str, Any]:
    response = client.get(f"{RUNS}/{run_id}", params={"include": "logs"} if logs else None)
    assert response.status_code == 200, response.text
    row: dict[str, Any] = response.json()
    return row


def test_fire_returns_the_bare_accepted_body(sim10: SimulatorHandle, client: httpx.Client) -> None:
    response = fire(client, "tri_two", key="k10")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == BARE_FIRE_KEYS
    assert body["status"] == "triggered"
    assert len(body["automationRunIds"]) == 2
    assert body["counts"] == {"automations": 2}
    replay = fire(client, "tri_two", key="k10").json()
    assert replay["status"] == "idempotent_replay"
    assert replay["automationRunIds"] == body["automationRunIds"]
    conflict = fire(client, "tri_two", {"email": "x@y.z"}, key="k10")
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "IDEMPOTENCY_CONFLICT")


def test_the_body_key_is_gone(sim10: SimulatorHandle, client: httpx.Client) -> None:
    response = fire(client, idempotencyKey="legacy")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "idempotencyKey"


def test_refusals_keep_the_fire_envelope(sim10: SimulatorHandle, client: httpx.Client) -> None:
    assert fire(client, "tri_nope").json()["code"] == "TRIGGER_EVENT_NOT_FOUND"
    assert fire(client, "tri_drafts").json()["code"] == "NO_PUBLISHED_AUTOMATION"


def test_run_detail_is_a_bare_row_and_the_list_filter_is_refused(
    sim10: SimulatorHandle, client: httpx.Client
) -> None:
    [run_id] = fire(client).json()["automationRunIds"]
    row = get_run(client, run_id)
    assert row["automationRunId"] == run_id
    assert row["status"] in ("queued", "running", "completed")  # never "pending" in 10.x
    refused = client.get(RUNS, params={"automationRunId": run_id})
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "automationRunId")
    missing = client.get(f"{RUNS}/run_missing")
    assert missing.status_code == 404
    assert_shape(missing.json(), fixture("sdk-9.3.0-dts/runs_404_automation_run_not_found.json"))
    done = poll(lambda: (r := get_run(client, run_id, logs=True))["status"] == "completed" and r)
    assert [log["status"] for log in done["logs"]] == ["completed", "completed"]


def test_statuses_of_the_newer_vocabulary(sim10: SimulatorHandle, client: httpx.Client) -> None:
    [queued] = fire(client, "tri_slow").json()["automationRunIds"]
    assert [
        r["automationRunId"] for r in client.get(RUNS, params={"status": "queued"}).json()["data"]
    ] == [queued]
    pending = client.get(RUNS, params={"status": "pending"})
    assert (pending.status_code, pending.json()["error"]["param"]) == (400, "status")
    [partial] = fire(client, "tri_partial").json()["automationRunIds"]
    row = poll(
        lambda: (
            (r := get_run(client, partial, logs=True))["status"] not in ("queued", "running") and r
        )
    )
    assert row["status"] == "partially_completed"
    assert row["logs"][-1]["status"] == "skipped"
    filtered = client.get(RUNS, params={"status": "partially_completed"}).json()["data"]
    assert [r["automationRunId"] for r in filtered] == [partial]
    _, upsell = fire(client, "tri_two").json()["automationRunIds"]
    failed = poll(lambda: (r := get_run(client, upsell, logs=True))["status"] == "failed" and r)
    assert failed["logs"][-1]["status"] == "failed"


def test_cancel_moved_to_post(sim10: SimulatorHandle, client: httpx.Client) -> None:
    [run_id] = fire(client, "tri_slow").json()["automationRunIds"]
    patch = client.patch(RUNS, json={"automationRunId": run_id, "status": "canceled"})
    assert patch.status_code == 405
    assert patch.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    response = client.post(f"{RUNS}/{run_id}/cancel", json={"reason": "stop"})
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["previousStatus"] == "queued"
    assert client.post(f"{RUNS}/{run_id}/cancel").status_code == 409
    assert get_run(client, run_id)["status"] == "canceled"


def test_readiness_and_trigger_detail(sim10: SimulatorHandle, client: httpx.Client) -> None:
    ready = client.get("/v1/automations/triggers/tri_signup/readiness").json()
    not_ready = client.get("/v1/automations/triggers/tri_drafts/readiness").json()
    shape = fixture("github-tests/post-9.3.0/v10_get_readiness_not_ready.json")
    assert_shape(not_ready, shape)
    assert_shape(ready, shape, any_type={"$.publishedAutomations"})
    assert (ready["ready"], ready["blockers"]) == (True, [])
    assert not_ready["ready"] is False
    assert not_ready["blockers"][0]["code"] == "NO_PUBLISHED_AUTOMATION"
    row = client.get("/v1/automations/triggers/tri_signup", params={"include": "skill"}).json()
    assert_shape(
        row, fixture("github-tests/post-9.3.0/v10_get_trigger_detail_bare_row_with_skill.json")
    )
    assert client.get("/v1/automations/triggers/tri_nope").status_code == 404
    old_ready = client.get("/v1/automations/triggers/tri_signup/fire")
    assert old_ready.status_code == 405


def test_the_shape_argument_wins_over_the_seed() -> None:
    with running_simulator({"apiShape": "9.3"}, api_shape="10") as sim:
        assert httpx.get(f"{sim.root_url}/_sim/health").json()["apiShape"] == "10"
    with running_simulator({"apiShape": "10"}) as sim:
        assert sim.state.api_shape == "10"
