"""Authentication, brand scope and rate windows over real HTTP."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from sim_support import TEST_SEED, assert_request_id, assert_shape, fire, fixture, poll

from brew_bridge.testing.simulator import SimulatorHandle

ERROR_401 = fixture("sdk-9.3.0-dts/error_401_invalid_api_key.json")
ERROR_403 = fixture("sdk-9.3.0-dts/error_403_insufficient_permissions.json")
ERROR_429 = fixture("sdk-9.3.0-dts/error_429_rate_limited.json")
KEYED_SEED: dict[str, Any] = {
    **TEST_SEED,
    "keys": {
        "brew_live": {"brandId": "brand_1"},
        "brew_old": {"brandId": "brand_1", "revoked": True},
        "brew_contacts": {"brandId": "brand_1", "scopes": ["contacts"]},
        "brew_automations": {"brandId": "brand_1", "scopes": ["automations"]},
        "brew_org": {"brands": ["brand_1", "brand_2"]},
    },
}
ROUTES = [
    ("POST", "/v1/automations/triggers/tri_signup/fire"),
    ("GET", "/v1/automations/triggers/tri_signup/fire"),
    ("GET", "/v1/automations/runs"),
    ("PATCH", "/v1/automations/runs"),
    ("GET", "/v1/automations/triggers"),
    ("POST", "/v1/automations/triggers"),
]


def call(sim: SimulatorHandle, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"payload": {"email": "a@b.co"}} if path.endswith("/fire") else {}
    return httpx.request(
        method, sim.base_url + path, headers=headers, json=body if method != "GET" else None
    )


@pytest.fixture
def keyed(sim: SimulatorHandle) -> SimulatorHandle:
    sim.reset(KEYED_SEED)
    return sim


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AUTHENTICATION_REQUIRED"),
        ({"Authorization": "Bearer"}, "AUTHENTICATION_REQUIRED"),
        ({"Authorization": "Bearer brew_unknown"}, "INVALID_API_KEY"),
        ({"Authorization": "Basic YnJldzp4"}, "INVALID_API_KEY"),
        ({"X-API-Key": "brew_old"}, "API_KEY_REVOKED"),
    ],
)
def test_401s_on_every_route(
    keyed: SimulatorHandle, method: str, path: str, headers: dict[str, str], code: str
) -> None:
    response = call(keyed, method, path, headers)
    assert response.status_code == 401
    assert_request_id(response)
    assert_shape(response.json(), ERROR_401)
    assert response.json()["error"]["code"] == code
    assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_scope_is_403_on_every_route(
    keyed: SimulatorHandle, method: str, path: str
) -> None:
    response = call(keyed, method, path, {"X-API-Key": "brew_contacts"})
    assert response.status_code == 403
    body = response.json()
    assert_shape(body, ERROR_403)
    assert body["error"]["param"] == "automations"


def test_both_headers_and_both_scopes_authenticate(keyed: SimulatorHandle) -> None:
    for headers in (
        {"Authorization": "Bearer brew_live"},
        {"authorization": "bearer brew_live"},
        {"X-API-Key": "brew_live"},
        {"X-API-Key": "brew_automations"},
    ):
        assert call(keyed, "GET", "/v1/automations/runs", headers).status_code == 200


def test_a_seed_with_keys_refuses_other_brew_keys(keyed: SimulatorHandle) -> None:
    response = call(keyed, "GET", "/v1/automations/runs", {"X-API-Key": "brew_anything"})
    assert response.json()["error"]["code"] == "INVALID_API_KEY"


def test_keys_change_at_run_time(keyed: SimulatorHandle) -> None:
    headers = {"X-API-Key": "brew_live"}
    assert call(keyed, "GET", "/v1/automations/runs", headers).status_code == 200
    keyed.put_key("brew_live", {"brandId": "brand_1", "revoked": True})
    assert call(keyed, "GET", "/v1/automations/runs", headers).json()["error"]["code"] == (
        "API_KEY_REVOKED"
    )
    keyed.put_key("brew_new")
    assert call(keyed, "GET", "/v1/automations/runs", {"X-API-Key": "brew_new"}).status_code == 200


def test_brand_scope(keyed: SimulatorHandle) -> None:
    live = {"X-API-Key": "brew_live"}
    assert call(keyed, "GET", "/v1/automations/runs", {**live, "X-Brand-Id": "brand_1"}).is_success
    mismatch = call(keyed, "GET", "/v1/automations/runs", {**live, "X-Brand-Id": "brand_2"})
    assert mismatch.status_code == 403
    assert mismatch.json()["error"]["code"] == "BRAND_SCOPE_MISMATCH"
    fire_mismatch = call(
        keyed, "POST", "/v1/automations/triggers/tri_signup/fire", {**live, "X-Brand-Id": "b2"}
    )
    assert fire_mismatch.status_code == 403
    assert_shape(
        fire_mismatch.json(),
        fixture("github-tests/fire_legacy_refusal_table.json")["cases"][1]["body"],
        optional={"$.triggerEventId"},
    )
    assert fire_mismatch.json()["status"] == "forbidden"

    org = {"X-API-Key": "brew_org"}
    required = call(keyed, "GET", "/v1/automations/runs", org)
    assert (required.status_code, required.json()["error"]["code"]) == (400, "BRAND_ID_REQUIRED")
    unknown = call(keyed, "GET", "/v1/automations/runs", {**org, "X-Brand-Id": "brand_9"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "BRAND_NOT_FOUND")
    fired = call(
        keyed, "POST", "/v1/automations/triggers/tri_signup/fire", {**org, "X-Brand-Id": "brand_2"}
    )
    run_id = fired.json()["details"]["automationRunIds"][0]

    def visible(headers: dict[str, str]) -> int:
        return httpx.get(
            keyed.base_url + "/v1/automations/runs",
            params={"automationRunId": run_id},
            headers=headers,
        ).status_code

    assert visible({**org, "X-Brand-Id": "brand_2"}) == 200
    assert visible({**org, "X-Brand-Id": "brand_1"}) == 404
    assert visible(live) == 404  # brand_1's key


def assert_rate_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == str(remaining)
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() - 1 <= reset <= time.time() + 61


def test_fires_are_limited_per_key_in_a_rolling_window(
    sim: SimulatorHandle, client: httpx.Client
) -> None:
    sim.put_limits({"automation.runs.write": {"limit": 3, "windowSeconds": 1.5}})
    for remaining in (2, 1, 0):
        response = fire(client)
        assert response.status_code == 200
        assert_rate_headers(response, 3, remaining)
    refused = fire(client, key="refused")
    assert refused.status_code == 429
    assert_request_id(refused)
    assert_rate_headers(refused, 3, 0)
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= math.ceil(1.5)
    body = refused.json()
    assert_shape(body, ERROR_429)
    assert body["error"]["retryAfter"] == retry_after
    # Another key, and another policy, are not affected.
    with httpx.Client(base_url=sim.base_url, headers={"X-API-Key": "brew_second"}) as second:
        assert fire(second).status_code == 200
    assert client.get("/v1/automations/runs").status_code == 200
    # Once the oldest fire leaves the window, fires pass again.
    poll(lambda: fire(client).status_code == 200, timeout=5)
    runs = client.get("/v1/automations/runs").json()["data"]
    assert len(runs) == 4  # 3 + the last (the second key's run is its brand's): 429 did nothing


@pytest.mark.parametrize(
    ("policy", "method", "path", "default"),
    [
        ("automation.runs.read", "GET", "/v1/automations/runs", 100),
        ("automation.runs.read", "PATCH", "/v1/automations/runs", 100),
        ("triggers.read", "GET", "/v1/automations/triggers", 100),
        ("triggers.read", "GET", "/v1/automations/triggers/tri_signup/fire", 100),
    ],
)
def test_read_policies(
    sim: SimulatorHandle, policy: str, method: str, path: str, default: int
) -> None:
    headers = {"X-API-Key": "brew_reader"}
    first = call(sim, "GET", path if method == "GET" else "/v1/automations/runs", headers)
    assert first.headers["x-ratelimit-limit"] == str(default)
    sim.put_limits({policy: {"limit": 1, "windowSeconds": 60}})
    if method == "PATCH":
        assert call(sim, "GET", "/v1/automations/runs", headers).status_code == 200
    else:
        assert call(sim, method, path, headers).status_code == 200
    limited = call(sim, method, path, headers)
    assert limited.status_code == 429
    assert limited.json()["error"]["retryAfter"] == int(limited.headers["retry-after"])
    assert sim.put_limits({}).get(policy) == {"limit": 1, "windowSeconds": 60}


def test_limits_from_the_seed(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.reset({**TEST_SEED, "limits": {"automation.runs.write": {"limit": 1, "windowSeconds": 30}}})
    assert fire(client).status_code == 200
    refused = fire(client)
    assert refused.status_code == 429
    assert 29 <= int(refused.headers["retry-after"]) <= 30
