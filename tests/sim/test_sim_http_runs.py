"""GET and PATCH /v1/automations/runs over real HTTP: list, detail, logs, lifecycle, cancel."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import assert_request_id, assert_shape, fire, fixture, poll

from brew_bridge.testing.simulator import SimulatorHandle

RUNS = "/v1/automations/runs"
STANDARD_400 = fixture("sdk-9.3.0-dts/runs_list_400_invalid_request.json")
# Optional row keys that a run only has at some point of its life.
ROW_OPTIONAL = {"$.data[].startedAt", "$.data[].completedAt", "$.data[].error"}


def run_ids(response: httpx.Response) -> list[str]:
    return [row["automationRunId"] for row in response.json()["data"]]


def detail(client: httpx.Client, run_id: str, logs: bool = False) -> dict[str, Any]:
    params = {"automationRunId": run_id, **({"include": "logs"} if logs else {})}
    response = client.get(RUNS, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["data"]  # detail mode: no pagination
    row: dict[str, Any] = body["data"][0]
    return row


def fire_ids(client: httpx.Client, trigger: str = "tri_signup", **payload: Any) -> list[str]:
    response = fire(client, trigger, {"email": "a@b.co", **payload})
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["details"]["automationRunIds"]
    return ids


def test_list_is_newest_first_in_brews_shape(client: httpx.Client) -> None:
    fired = [fire_ids(client)[0] for _ in range(3)]
    response = client.get(RUNS)
    assert response.status_code == 200
    assert_request_id(response)
    assert response.headers["x-ratelimit-limit"] == "100"
    assert run_ids(response) == fired[::-1]
    poll(lambda: all(r["status"] == "completed" for r in client.get(RUNS).json()["data"]))
    body = client.get(RUNS).json()
    assert_shape(body, fixture("sdk-9.3.0-dts/runs_list_200.json"))
    assert body["pagination"] == {"limit": 100, "cursor": None, "hasMore": False}
    row = body["data"][0]
    assert (row["mode"], row["automationId"], row["recipientEmail"]) == (
        "live",
        "auto_welcome",
        "a@b.co",
    )


def test_pages_follow_the_opaque_cursor(client: httpx.Client) -> None:
    fired = [fire_ids(client)[0] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(RUNS, params=params).json()
        pages += 1
        seen += [row["automationRunId"] for row in page["data"]]
        assert page["pagination"]["limit"] == 2
        cursor = page["pagination"]["cursor"]
        assert page["pagination"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == 3
    assert seen == fired[::-1]


def test_filters(client: httpx.Client) -> None:
    welcome = fire_ids(client, email="Jane@Example.com")[0]
    receipt, upsell = fire_ids(client, "tri_two")
    instance = detail(client, receipt)["triggerInstanceId"]

    def ids(**params: str) -> list[str]:
        response = client.get(RUNS, params=params)
        assert response.status_code == 200, response.text
        return run_ids(response)

    assert ids(automationId="auto_upsell") == [upsell]
    assert ids(triggerEventId="tri_two") == [upsell, receipt]
    assert ids(triggerInstanceId=instance) == [upsell, receipt]
    assert ids(recipientEmail="jane@example.com") == [welcome]
    assert ids(mode="live") == [upsell, receipt, welcome]
    assert ids(mode="test") == []
    assert ids(**{"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00.000Z"}) == [
        upsell,
        receipt,
        welcome,
    ]
    assert ids(**{"from": "2100-01-01T00:00:00Z"}) == []
    assert ids(to="2000-01-01T00:00:00Z") == []
    poll(lambda: ids(status="completed") == [receipt, welcome])
    assert ids(status="failed") == [upsell]
    assert ids(status="running") == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "cancelled"}, "status"),
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"from": "yesterday"}, "from"),
        ({"mode": "dry"}, "mode"),
        ({"include": "logs"}, "include"),
        ({"brandId": "b"}, "brandId"),
        ({"triggerInstanceId": "tin"}, "triggerInstanceId"),
        ({"recipientEmail": "nobody"}, "recipientEmail"),
    ],
)
def test_invalid_queries_name_the_param(
    client: httpx.Client, params: dict[str, str], param: str
) -> None:
    response = client.get(RUNS, params=params)
    assert response.status_code == 400
    assert_shape(response.json(), STANDARD_400)
    assert response.json()["error"]["param"] == param
    assert "x-ratelimit-limit" not in response.headers


def test_detail_mode_and_unknown_ids(client: httpx.Client) -> None:
    [run_id] = fire_ids(client)
    row = detail(client, run_id)
    assert row["automationRunId"] == run_id
    assert "logs" not in row
    missing = client.get(RUNS, params={"automationRunId": "run_missing"})
    assert missing.status_code == 404
    assert_request_id(missing)
    body = missing.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/runs_404_automation_run_not_found.json"))
    assert body["error"]["message"] == "Automation run 'run_missing' was not found."


def test_runs_go_pending_running_completed_with_logs(client: httpx.Client) -> None:
    [run_id] = fire_ids(client)  # pending 100 ms, done at 400 ms
    final = poll(
        lambda: (row := detail(client, run_id, logs=True))["status"] == "completed" and row
    )
    assert_shape(
        {"data": [final]},
        fixture("github-tests/runs_detail_include_logs_200.json"),
        optional={
            "$.data[].triggerInstanceId",
            "$.data[].recipientEmail",
            "$.data[].startedAt",
            "$.data[].completedAt",
            "$.data[].logs[].durationMs",
            "$.data[].logs[].completedAt",
        },
    )
    assert [(log["nodeType"], log["status"], log["orderIndex"]) for log in final["logs"]] == [
        ("trigger", "success", 0),
        ("sendEmail", "success", 1),
    ]
    assert final["startedAt"] <= final["completedAt"]


def test_a_run_is_seen_pending_then_running(client: httpx.Client, sim: SimulatorHandle) -> None:
    sim.put_trigger(
        "tri_watch",
        {
            "payloadSchema": {
                "type": "object",
                "fields": [{"key": "email", "type": "string", "required": True}],
            },
            # long enough to be seen pending however loaded the machine
            "automations": [{"automationId": "a", "pendingMs": 800, "durationMs": 1600}],
        },
    )
    [run_id] = fire_ids(client, "tri_watch")
    assert detail(client, run_id)["status"] == "pending"
    assert "startedAt" not in detail(client, run_id)
    running = poll(
        lambda: (row := detail(client, run_id, logs=True))["status"] == "running" and row
    )
    assert "completedAt" not in running
    assert running["logs"][0]["status"] == "success"
    poll(lambda: detail(client, run_id)["status"] == "completed")


def test_failed_runs_carry_their_error(client: httpx.Client) -> None:
    _, upsell = fire_ids(client, "tri_two")
    row = poll(lambda: (r := detail(client, upsell, logs=True))["status"] == "failed" and r)
    assert row["error"] == "Mailbox unavailable"
    assert row["logs"][-1]["status"] == "error"
    assert row["logs"][-1]["error"] == "Mailbox unavailable"


def cancel(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.patch(RUNS, json=body)


def test_cancel_a_live_run_then_again(client: httpx.Client) -> None:
    [run_id] = fire_ids(client, "tri_slow")
    response = cancel(
        client, {"automationRunId": run_id, "status": "canceled", "reason": "wrong segment"}
    )
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "100"
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/runs_cancel_200.json"))
    assert body["status"] == "canceled"
    assert body["previousStatus"] in ("pending", "running")
    row = detail(client, run_id)
    assert row["status"] == "canceled"
    assert "completedAt" in row

    again = cancel(client, {"automationRunId": run_id, "status": "canceled"})
    assert again.status_code == 409
    error = again.json()
    assert_shape(error, fixture("sdk-9.3.0-dts/runs_cancel_409_run_not_cancellable.json"))
    assert error["error"]["code"] == "RUN_NOT_CANCELLABLE"
    assert "already canceled" in error["error"]["message"]


def test_a_finished_run_cannot_be_canceled(client: httpx.Client) -> None:
    [run_id] = fire_ids(client)
    poll(lambda: detail(client, run_id)["status"] == "completed")
    response = cancel(client, {"automationRunId": run_id, "status": "canceled"})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        f"Automation run '{run_id}' is already completed and can no longer be canceled."
    )
    assert detail(client, run_id)["status"] == "completed"  # first terminal status wins


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"automationRunId": "run_missing", "status": "canceled"}, 404, "automationRunId"),
        ({"automationRunId": "RUN", "status": "cancelled"}, 400, "status"),
        ({"automationRunId": "RUN", "status": "canceled", "brandId": "b"}, 400, "brandId"),
        ({"status": "canceled"}, 400, "automationRunId"),
    ],
)
def test_cancel_refusals(
    client: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    [run_id] = fire_ids(client, "tri_slow")
    if body.get("automationRunId") == "RUN":
        body = {**body, "automationRunId": run_id}
    response = cancel(client, body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    assert detail(client, run_id)["status"] != "canceled"


def test_runs_of_another_brand_are_not_found(client: httpx.Client, sim: SimulatorHandle) -> None:
    [run_id] = fire_ids(client, "tri_slow")
    with httpx.Client(base_url=sim.base_url, headers={"X-API-Key": "brew_someone_else"}) as other:
        assert other.get(RUNS, params={"automationRunId": run_id}).status_code == 404
        assert other.get(RUNS).json()["data"] == []
        assert cancel(other, {"automationRunId": run_id, "status": "canceled"}).status_code == 404
