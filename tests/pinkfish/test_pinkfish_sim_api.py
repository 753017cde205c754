"""The Pinkfish simulator's three routes over real HTTP, against the seed document."""

from __future__ import annotations

import re

import httpx
import pytest
from pinkfish_support import (
    KEY,
    OTHER_KEY,
    REVOKED_KEY,
    ManualClock,
    assert_shape,
    fire,
    fixture,
    read,
)

from brew_bridge.testing.pinkfish import PinkfishSimulatorHandle

ERROR = {"error": "CODE", "message": "text"}  # our error body (the document shows none)


def assert_request_id(response: httpx.Response) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert_shape(response.json(), ERROR)
    assert response.json()["error"] == code
    assert_request_id(response)


# -- fire ---------------------------------------------------------------------------------


def test_fire_answers_an_empty_body_and_the_ids_in_the_documents_headers(
    sim: PinkfishSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client)
    assert fired.status_code == 200
    assert fired.content == b""
    for name, example in fixture("fire_headers").items():
        assert len(fired.headers[name]) == len(example), name
    run_id = fired.headers["X-Pf-Run-Id"]
    assert run_id.isdigit()
    assert abs(int(run_id) / 1e9 - clock()) < 1e-3  # the trigger time in nanoseconds
    assert fired.headers["X-Pf-Automation-Id"] == "d831ue4rccbc73knbi80"  # the seed's
    assert_request_id(fired)
    (logged,) = sim.requests()
    assert logged["body"] == {"user_request": "process this data"}
    assert logged["apiWait"] == "false"
    assert (logged["method"], logged["path"], logged["status"]) == (
        "POST",
        "/ext/triggers/trg_hello",
        200,
    )


def test_fire_ids_are_new_on_every_fire_and_automation_ids_are_xids(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    first, second = fire(client, "trg_steps"), fire(client, "trg_steps")
    assert int(second.headers["X-Pf-Run-Id"]) > int(first.headers["X-Pf-Run-Id"])
    automation_id = first.headers["X-Pf-Automation-Id"]
    assert automation_id == second.headers["X-Pf-Automation-Id"]
    assert re.fullmatch(r"[0-9a-v]{20}", automation_id)
    assert [r["runId"] for r in sim.runs()] == [
        first.headers["X-Pf-Run-Id"],
        second.headers["X-Pf-Run-Id"],
    ]


def test_fire_without_the_wait_header_is_async_too(client: httpx.Client) -> None:
    fired = fire(client, wait=None)
    assert fired.status_code == 200
    assert fired.headers["X-Pf-Run-Id"]


@pytest.mark.parametrize(
    ("wait", "code"), [("true", "SYNC_NOT_SUPPORTED"), ("soon", "INVALID_REQUEST")]
)
def test_fire_refuses_the_synchronous_pattern(
    sim: PinkfishSimulatorHandle, client: httpx.Client, wait: str, code: str
) -> None:
    assert_error(fire(client, wait=wait), 400, code)
    assert sim.runs() == []


def test_fire_refuses_a_body_that_is_not_json(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    response = client.post("/ext/triggers/trg_hello", content=b"{nope", headers={"X-API-KEY": KEY})
    assert_error(response, 400, "INVALID_REQUEST")
    assert sim.runs() == []


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "MISSING_API_KEY"),
        ("pf_unknown_key_1234", "INVALID_API_KEY"),
        (REVOKED_KEY, "API_KEY_REVOKED"),
    ],
)
def test_fire_needs_a_valid_key(
    sim: PinkfishSimulatorHandle, client: httpx.Client, key: str | None, code: str
) -> None:
    assert_error(fire(client, key=key), 401, code)
    assert sim.runs() == []


def test_an_unknown_trigger_and_another_accounts_trigger_are_not_found(
    client: httpx.Client,
) -> None:
    assert_error(fire(client, "trg_nope"), 404, "TRIGGER_NOT_FOUND")
    assert_error(fire(client, "trg_globex"), 404, "TRIGGER_NOT_FOUND")
    assert fire(client, "trg_globex", key=OTHER_KEY).status_code == 200


def test_without_a_keys_section_any_key_is_valid_and_its_own_account(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    sim.reset({"triggers": {"trg_any": {}}})
    fired = fire(client, "trg_any", key="pf_whatever_key_1")
    assert fired.status_code == 200
    assert read(client, fired, key="pf_whatever_key_1").status_code == 200
    assert_error(read(client, fired, key="pf_whatever_key_2"), 404, "RUN_NOT_FOUND")


# -- status -------------------------------------------------------------------------------


def test_status_goes_pending_running_complete_as_the_documents_body(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client)
    seen = []
    for _ in range(3):
        response = read(client, fired)
        assert response.status_code == 200
        assert_request_id(response)
        body = response.json()
        assert_shape(body, fixture("status_complete"))
        assert body["runId"] == fired.headers["X-Pf-Run-Id"]
        assert body["automationId"] == fired.headers["X-Pf-Automation-Id"]
        seen.append((body["status"], body["stepStatus"], body["stepInfo"]["1"]))
        clock.advance(1.0)
    step = {"name": "Step 1", "executionOrder": 1}
    assert seen == [
        ("PENDING", {"1": "PENDING"}, {"status": "PENDING", **step}),
        ("RUNNING", {"1": "RUNNING"}, {"status": "RUNNING", **step}),
        ("COMPLETE", {"1": "COMPLETE"}, {"status": "COMPLETE", **step}),
    ]
    assert read(client, fired).json() == fixture("status_complete") | {
        "runId": fired.headers["X-Pf-Run-Id"]
    }


def test_steps_run_one_after_another_and_the_last_one_fails(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client, "trg_steps")
    statuses = []
    for _ in range(4):  # 0.2 s pending, then three steps of 1 s each
        clock.advance(0.9)
        body = read(client, fired).json()
        statuses.append((body["status"], *body["stepStatus"].values()))
    assert statuses == [
        ("RUNNING", "RUNNING", "PENDING", "PENDING"),
        ("RUNNING", "COMPLETE", "RUNNING", "PENDING"),
        ("RUNNING", "COMPLETE", "COMPLETE", "RUNNING"),
        ("FAILED", "COMPLETE", "COMPLETE", "FAILED"),
    ]
    names = [info["name"] for info in read(client, fired).json()["stepInfo"].values()]
    assert names == ["Fetch", "Summarize", "Send"]


def test_a_run_that_exceeds_its_time_limit_ends_timeout(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client, "trg_timeout")
    clock.advance(1.0)
    body = read(client, fired).json()
    assert (body["status"], body["stepStatus"]) == ("TIMEOUT", {"1": "TIMEOUT"})


def test_the_key_in_the_path_is_checked_and_runs_are_the_accounts_own(
    client: httpx.Client,
) -> None:
    fired = fire(client)
    assert_error(read(client, fired, key="pf_unknown_key_1234"), 401, "INVALID_API_KEY")
    assert_error(read(client, fired, key=REVOKED_KEY), 401, "API_KEY_REVOKED")
    assert_error(read(client, fired, key=OTHER_KEY), 404, "RUN_NOT_FOUND")
    assert_error(read(client, fired, "results", key=OTHER_KEY), 404, "RUN_NOT_FOUND")


def test_an_unknown_run_or_the_wrong_automation_is_not_found(client: httpx.Client) -> None:
    fired = fire(client)
    run_id, automation_id = fired.headers["X-Pf-Run-Id"], fired.headers["X-Pf-Automation-Id"]
    for path in (
        f"/ext/webhook/{KEY}/runs/{automation_id}/1778786207000000000/status",
        f"/ext/webhook/{KEY}/runs/c0000000000000000000/{run_id}/status",
        f"/ext/webhook/{KEY}/runs/{automation_id}/{run_id}/results-nope",
    ):
        assert_error(client.get(path), 404, "RUN_NOT_FOUND" if "nope" not in path else "NOT_FOUND")


# -- results ------------------------------------------------------------------------------


def test_results_of_a_complete_run_are_the_documents_body(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client)
    clock.advance(2.0)
    response = read(client, fired, "results")
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, fixture("results_complete"))
    expected = fixture("results_complete")
    for key in ("automationId", "automationVersion", "automationName", "type", "status", "started"):
        assert body[key] == expected[key], key
    assert body["id"] == fired.headers["X-Pf-Run-Id"]
    (step,) = body["results"]
    assert (step["stepIndex"], step["stepVersion"], step["exitCode"]) == (1, 3, 0)
    assert sorted(step["resultUrls"]) == ["output.txt", "stdout.txt"]
    assert step["duration"] == 1800  # the 2 s run less its 0.2 s in PENDING
    assert body == read(client, fired, "results").json()  # the same on every read


def test_results_carry_the_designated_output_when_the_trigger_has_one(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client, "trg_output")
    clock.advance(1.0)
    body = read(client, fired, "results").json()
    assert_shape(body, fixture("results_complete"), optional={"$.designatedOutput"})
    assert_shape(body["designatedOutput"], fixture("results_designated_output")["designatedOutput"])
    assert body["designatedOutput"]["fileName"] == "retrieved-poem.txt"
    assert "designatedOutput" not in read(client, fire(client, "trg_output"), "results").json()


def test_results_before_the_end_hold_the_steps_that_ended(
    client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client, "trg_steps")
    body = read(client, fired, "results").json()
    assert_shape(body, fixture("results_complete"))
    assert (body["status"], body["results"]) == ("PENDING", [])
    clock.advance(2.3)
    body = read(client, fired, "results").json()
    assert body["status"] == "RUNNING"
    assert [r["stepIndex"] for r in body["results"]] == [1, 2]


@pytest.mark.parametrize(
    ("trigger", "status", "files", "exit_code"),
    [
        ("trg_steps", "FAILED", ["stderr.txt", "stdout.txt"], 1),
        ("trg_timeout", "TIMEOUT", ["stdout.txt"], 124),
    ],
)
def test_results_of_a_bad_end_say_how_the_last_step_ended(
    client: httpx.Client,
    clock: ManualClock,
    trigger: str,
    status: str,
    files: list[str],
    exit_code: int,
) -> None:
    fired = fire(client, trigger)
    clock.advance(5.0)
    body = read(client, fired, "results").json()
    assert_shape(body, fixture("results_complete"))
    assert body["status"] == status
    last = body["results"][-1]
    assert (sorted(last["resultUrls"]), last["exitCode"]) == (files, exit_code)
    assert all(r["exitCode"] == 0 for r in body["results"][:-1])


# -- the rest of the surface --------------------------------------------------------------


def test_unknown_paths_and_methods(client: httpx.Client) -> None:
    assert_error(client.get("/ext/nope"), 404, "NOT_FOUND")
    assert_error(
        client.get("/ext/triggers/trg_hello", headers={"X-API-KEY": KEY}), 405, "METHOD_NOT_ALLOWED"
    )
    assert_error(client.get("/_sim/nope"), 404, "NOT_FOUND")
