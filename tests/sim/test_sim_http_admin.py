"""The /_sim/ admin routes, the request log, and what every answer carries."""

from __future__ import annotations

from itertools import pairwise

import httpx
import pytest
from sim_support import SCHEMA, TEST_SEED, assert_request_id, assert_shape, fire, fixture

from brew_bridge.testing.simulator import SimulatorHandle

STANDARD_404 = fixture("sdk-9.3.0-dts/runs_404_automation_run_not_found.json")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/nothing", 404),
        ("GET", "/api", 404),
        ("GET", "/", 404),
        ("GET", "/_sim/nothing", 404),
        ("DELETE", "/api/v1/automations/runs", 405),
        ("GET", "/_sim/reset", 405),
        ("GET", "/_sim/health", 200),
        ("GET", "/_sim/requests", 200),
        ("POST", "/_sim/reset", 200),
    ],
)
def test_every_answer_carries_a_request_id(
    sim: SimulatorHandle, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, sim.root_url + path)
    assert response.status_code == status
    assert_request_id(response)
    if status >= 400:
        assert_shape(response.json(), STANDARD_404, optional={"$.error.param"})


def test_request_ids_are_unique(client: httpx.Client) -> None:
    ids = {fire(client).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_the_request_log_records_every_api_request_oldest_first(
    sim: SimulatorHandle, client: httpx.Client
) -> None:
    fire(client, key="header-key")
    fire(client, idempotencyKey="body-key")
    client.get("/v1/automations/runs", params={"limit": "5", "status": "running"})
    client.post(
        "/v1/automations/triggers/tri_signup/fire",
        content=b"{broken",
        headers={"content-type": "application/json"},
    )
    client.get("/v1/unknown")
    httpx.get(f"{sim.root_url}/_sim/health")  # admin requests are not API requests
    log = sim.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/api/v1/automations/triggers/tri_signup/fire", 200),
        ("POST", "/api/v1/automations/triggers/tri_signup/fire", 200),
        ("GET", "/api/v1/automations/runs", 200),
        ("POST", "/api/v1/automations/triggers/tri_signup/fire", 400),
        ("GET", "/api/v1/unknown", 404),
    ]
    assert [r["idempotencyKey"] for r in log] == ["header-key", "body-key", None, None, None]
    assert log[0]["body"] == {"payload": {"email": "a@b.co"}}
    assert log[2]["query"] == {"limit": "5", "status": "running"}
    assert log[2]["body"] is None
    assert log[3]["body"] is None  # not JSON
    assert all(a["at"] <= b["at"] for a, b in pairwise(log))
    assert all(r["requestId"].startswith("req_") for r in log)
    assert all(r["fault"] is None for r in log)
    sim.clear_requests()
    assert sim.requests() == []


def test_the_request_log_keeps_the_newest(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.reset({**TEST_SEED, "requestLogSize": 2})
    for key in ("a", "b", "c"):
        fire(client, key=key)
    assert [r["idempotencyKey"] for r in sim.requests()] == ["b", "c"]


def test_reset_returns_to_the_seed(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.put_trigger("tri_extra", {"payloadSchema": SCHEMA, "automations": [{"automationId": "x"}]})
    sim.put_limits({"automation.runs.write": {"limit": 1, "windowSeconds": 60}})
    fire(client, key="before-reset")
    assert fire(client, "tri_extra").status_code == 429
    sim.reset()
    assert client.get("/v1/automations/runs").json()["data"] == []
    assert fire(client, "tri_extra").status_code == 404
    assert fire(client, key="before-reset").json()["status"] == "triggered"
    assert len(sim.requests()) == 3  # the log starts over too


def test_put_trigger_creates_and_replaces(sim: SimulatorHandle, client: httpx.Client) -> None:
    created = sim.put_trigger(
        "tri_admin",
        {
            "title": "Admin made",
            "payloadSchema": SCHEMA,
            "automations": [{"automationId": "auto_1", "outcome": "failed", "durationMs": 50}],
        },
    )
    assert created["automations"] == [
        {"automationId": "auto_1", "published": True, "outcome": "failed"}
    ]
    assert fire(client, "tri_admin").status_code == 200
    replaced = sim.put_trigger(
        "tri_admin",
        {"payloadSchema": SCHEMA, "automations": [{"automationId": "auto_1", "published": False}]},
    )
    assert replaced["createdAt"] == created["createdAt"]
    assert replaced["title"] == "tri_admin"
    assert fire(client, "tri_admin").status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/_sim/triggers/tri_bad", {"automations": []}, "trigger.payloadSchema"),
        (
            "/_sim/triggers/tri_bad",
            {"payloadSchema": SCHEMA, "automations": [{"automationId": "a", "durationMs": -1}]},
            "trigger.automations[0].durationMs",
        ),
        ("/_sim/keys/brew_k", {"scopes": "all"}, "key.scopes"),
        (
            "/_sim/limits",
            {"automation.runs.write": {"limit": 0}},
            "limits.automation.runs.write.limit",
        ),
        ("/_sim/reset", {"apiShape": "11"}, "seed.apiShape"),
    ],
)
def test_admin_refusals_name_the_key(
    sim: SimulatorHandle, path: str, body: dict[str, object], param: str
) -> None:
    method = "POST" if path == "/_sim/reset" else "PUT"
    response = httpx.request(method, sim.root_url + path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["message"].startswith(param)


def test_admin_bodies_must_be_json(sim: SimulatorHandle) -> None:
    response = httpx.put(f"{sim.root_url}/_sim/limits", content=b"nope")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "body"


def test_health_and_limits(sim: SimulatorHandle) -> None:
    assert httpx.get(f"{sim.root_url}/_sim/health").json() == {"ok": True, "apiShape": "9.3"}
    limits = httpx.get(f"{sim.root_url}/_sim/limits").json()
    assert limits["automation.runs.write"] == {"limit": 60, "windowSeconds": 60.0}
    assert limits["automation.runs.read"] == {"limit": 100, "windowSeconds": 60.0}
    assert limits["triggers.read"] == {"limit": 100, "windowSeconds": 60.0}
