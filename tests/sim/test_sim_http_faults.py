"""Injected faults over real HTTP, including the "unknown outcome" reset after the work."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sim_support import KEY, TEST_SEED, assert_request_id, assert_shape, fire, fixture, poll

from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

RUNS = "/v1/automations/runs"


def runs(client: httpx.Client) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.get(RUNS).json()["data"]
    return data


def fire_faults(sim: SimulatorHandle, *steps: dict[str, Any], **rule: Any) -> None:
    sim.put_faults({"fire": {"next": list(steps), **rule}})


def test_scripted_503s_then_success(sim: SimulatorHandle, client: httpx.Client) -> None:
    fire_faults(sim, {"fault": "error", "status": 503, "count": 2, "retryAfter": 2})
    for _ in range(2):
        response = fire(client, key="retry-me")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert_request_id(response)
        assert_shape(response.json(), fixture("github-tests/error_503_service_unavailable.json"))
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert runs(client) == []  # a gateway error happens before Brew does anything
    assert fire(client, key="retry-me").json()["status"] == "triggered"
    assert [(r["method"], r["status"], r["fault"]) for r in sim.requests()] == [
        ("POST", 503, "error"),
        ("POST", 503, "error"),
        ("GET", 200, None),
        ("POST", 200, None),
    ]


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, "envelope", "application/json"),
        (502, "html", "text/html"),
        (504, "empty", None),
    ],
)
def test_error_bodies(
    sim: SimulatorHandle, client: httpx.Client, status: int, body: str, content_type: str | None
) -> None:
    fire_faults(sim, {"fault": "error", "status": status, "body": body})
    response = fire(client)
    assert response.status_code == status
    assert_request_id(response)
    assert "retry-after" not in response.headers
    if content_type is None:
        assert response.content == b""
    else:
        assert response.headers["content-type"].startswith(content_type)
    if body == "envelope":
        assert_shape(response.json(), fixture("sdk-9.3.0-dts/error_500_internal_error.json"))


def test_error_after_work_leaves_the_fire_done(sim: SimulatorHandle, client: httpx.Client) -> None:
    fire_faults(sim, {"fault": "errorAfterWork", "status": 500})
    assert fire(client, key="half-done").status_code == 500
    [run] = runs(client)
    replay = fire(client, key="half-done").json()
    assert replay["status"] == "idempotent_replay"
    assert replay["details"]["automationRunIds"] == [run["automationRunId"]]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_reset_after_work_is_an_unknown_outcome(http: str) -> None:
    """The fire is processed and recorded, then the connection drops with no answer."""
    with (
        running_simulator(TEST_SEED, http=http) as sim,
        httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        fire_faults(sim, {"fault": "reset"})
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            fire(client, key="did-it-happen")
        [entry] = poll(lambda: [r for r in sim.requests() if r["fault"] == "reset"])
        assert (entry["status"], entry["idempotencyKey"]) == (200, "did-it-happen")
        assert entry["body"] == {"payload": {"email": "a@b.co"}}
        replay = fire(client, key="did-it-happen")  # same client: it reconnects
        assert replay.json()["status"] == "idempotent_replay"
        [run] = runs(client)
        assert replay.json()["details"]["automationRunIds"] == [run["automationRunId"]]


def test_a_hang_before_work_times_out_and_does_nothing(
    sim: SimulatorHandle, client: httpx.Client
) -> None:
    fire_faults(sim, {"fault": "hang", "seconds": 30})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/automations/triggers/tri_signup/fire",
            json={"payload": {"email": "a@b.co"}},
            timeout=0.3,
        )
    assert time.monotonic() - started < 5
    [entry] = poll(lambda: [r for r in sim.requests() if r["fault"] == "hang" and r["status"] == 0])
    assert entry["method"] == "POST"
    assert runs(client) == []


def test_a_hang_after_work_times_out_but_the_fire_happened(
    sim: SimulatorHandle, client: httpx.Client
) -> None:
    fire_faults(sim, {"fault": "hangAfterWork", "seconds": 30})
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/automations/triggers/tri_signup/fire",
            json={"payload": {"email": "a@b.co"}},
            headers={"Idempotency-Key": "slow"},
            timeout=0.3,
        )
    assert len(runs(client)) == 1
    assert fire(client, key="slow").json()["status"] == "idempotent_replay"


def test_a_short_hang_answers_late(sim: SimulatorHandle, client: httpx.Client) -> None:
    fire_faults(sim, {"fault": "hang", "seconds": 0.3})
    started = time.monotonic()
    assert fire(client).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_429_bursts(sim: SimulatorHandle, client: httpx.Client) -> None:
    fire_faults(sim, {"fault": "rateLimit", "count": 2, "retryAfter": 3})
    for _ in range(2):
        response = fire(client)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.headers["x-ratelimit-limit"] == "60"
        assert_shape(response.json(), fixture("sdk-9.3.0-dts/error_429_rate_limited.json"))
        assert response.json()["error"]["retryAfter"] == 3
    assert fire(client).status_code == 200


def test_latency(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.put_faults({"read": {"latencyMs": 250}})
    started = time.monotonic()
    assert client.get(RUNS).status_code == 200
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    assert fire(client).status_code == 200  # fires are another scope
    assert time.monotonic() - started < 0.25


def test_read_faults_leave_fires_alone(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.put_faults({"read": {"errorRate": 1.0, "errorStatuses": [502]}})
    assert client.get(RUNS).status_code == 502
    assert client.get("/v1/automations/triggers").status_code == 502
    assert fire(client).status_code == 200


def test_rates_repeat_for_the_same_seed(sim: SimulatorHandle, client: httpx.Client) -> None:
    settings = {"seed": 42, "fire": {"errorRate": 0.5, "errorStatuses": [500, 503]}}

    def statuses() -> list[int]:
        sim.put_faults(settings)
        return [fire(client).status_code for _ in range(30)]

    first = statuses()
    assert set(first) == {200, 500, 503}
    assert statuses() == first


def test_faults_from_the_seed_and_reset(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.reset({**TEST_SEED, "faults": {"fire": {"next": [{"fault": "error", "status": 500}]}}})
    assert fire(client).status_code == 500
    assert fire(client).status_code == 200
    sim.reset()  # back to the same seed: the script starts over
    assert fire(client).status_code == 500


def test_bad_fault_settings_are_refused_with_the_key_path(sim: SimulatorHandle) -> None:
    response = httpx.put(f"{sim.root_url}/_sim/faults", json={"fire": {"errorRate": 2}})
    assert response.status_code == 400
    assert_request_id(response)
    assert response.json()["error"]["param"] == "faults.fire.errorRate"
