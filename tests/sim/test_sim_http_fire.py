"""POST and GET …/fire over real HTTP: every answer of the contract, in Brew's exact shapes."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from sim_support import KEY, TEST_SEED, assert_request_id, assert_shape, fire, fixture, poll

from brew_bridge.testing.simulator import SimulatorHandle

STANDARD_400 = fixture("sdk-9.3.0-dts/runs_list_400_invalid_request.json")
REFUSALS = {
    c["httpStatus"]: c["body"]
    for c in fixture("github-tests/fire_legacy_refusal_table.json")["cases"]
}


def runs_of(client: httpx.Client, trigger: str) -> list[dict[str, object]]:
    data: list[dict[str, object]] = client.get(
        "/v1/automations/runs", params={"triggerEventId": trigger}
    ).json()["data"]
    return data


def test_fire_triggers_one_run_per_published_automation(client: httpx.Client) -> None:
    response = fire(client, "tri_signup", {"email": "jane@example.com", "firstName": "Jane"})
    assert response.status_code == 200
    assert_request_id(response)
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/fire_200_triggered.json"))
    assert (body["success"], body["status"], body["code"]) == (True, "triggered", "TRIGGERED")
    details = body["details"]
    assert details["resolvedPayload"] == {
        "email": "jane@example.com",
        "firstName": "Jane",
        "plan": "free",
    }
    assert details["triggerInstanceId"].startswith("tin_")
    assert details["publishedAutomations"] == [
        {"automationId": "auto_welcome", "name": "Welcome flow"}
    ]
    assert details["counts"] == {"automations": 1}
    [run_id] = details["automationRunIds"]
    assert run_id.startswith("run_")
    assert [r["automationRunId"] for r in runs_of(client, "tri_signup")] == [run_id]

    two = fire(client, "tri_two").json()["details"]
    assert len(set(two["automationRunIds"])) == 2
    assert two["counts"] == {"automations": 2}
    runs = runs_of(client, "tri_two")
    assert {r["automationId"] for r in runs} == {"auto_receipt", "auto_upsell"}
    assert {r["triggerInstanceId"] for r in runs} == {two["triggerInstanceId"]}


def test_fire_answers_carry_rate_limit_headers(client: httpx.Client) -> None:
    response = fire(client)
    assert response.headers["x-ratelimit-limit"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "59"
    assert int(response.headers["x-ratelimit-reset"]) > 1_700_000_000
    assert "retry-after" not in response.headers


def test_undeclared_payload_keys_are_warnings(client: httpx.Client) -> None:
    body = fire(client, payload={"email": "a@b.co", "coupon": "SPRING"}).json()
    assert body["status"] == "triggered"
    assert body["details"]["warnings"] == [
        {
            "code": "unexpected_key",
            "field": "coupon",
            "message": 'Field "coupon" is not declared in the contract',
        }
    ]
    assert body["details"]["resolvedPayload"]["coupon"] == "SPRING"


@pytest.mark.parametrize("extra", ["metadata", "brandId", "dryRun"])
def test_unknown_body_keys_are_invalid_requests(client: httpx.Client, extra: str) -> None:
    response = fire(client, **{extra: "x"})
    assert response.status_code == 400
    assert_request_id(response)
    body = response.json()
    assert_shape(body, STANDARD_400)
    assert (body["error"]["code"], body["error"]["param"]) == ("INVALID_REQUEST", extra)
    assert runs_of(client, "tri_signup") == []


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"", "body"),
        (b'{"idempotencyKey": "k"}', "payload"),
        (b'{"payload": "email=a@b.co"}', "payload"),
        (b'{"payload": {"email": "a@b.co"}, "idempotencyKey": ""}', "idempotencyKey"),
    ],
)
def test_malformed_bodies_are_refused_with_the_standard_envelope(
    client: httpx.Client, content: bytes, param: str
) -> None:
    response = client.post(
        "/v1/automations/triggers/tri_signup/fire",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert_shape(body, STANDARD_400)
    assert body["error"]["param"] == param


def test_payload_mismatch_uses_the_fire_envelope(client: httpx.Client) -> None:
    response = fire(client, payload={"firstName": 7, "order": {"total": "12"}})
    assert response.status_code == 400
    body = response.json()
    assert_shape(
        body,
        fixture("github-tests/fire_400_payload_mismatch_INVALID_PAYLOAD.json"),
        optional={"$.details.errors[].actualType"},  # a missing field has no actual type
    )
    assert (body["status"], body["code"]) == ("payload_mismatch", "INVALID_PAYLOAD")
    assert [(e["code"], e["field"]) for e in body["details"]["errors"]] == [
        ("missing_required", "email"),
        ("invalid_type", "firstName"),
        ("invalid_type", "order.total"),
    ]
    assert body["details"]["payloadSchema"] == TEST_SEED["triggers"]["tri_signup"]["payloadSchema"]
    assert runs_of(client, "tri_signup") == []


def test_unknown_trigger_is_404_in_the_fire_envelope(client: httpx.Client) -> None:
    response = fire(client, "tri_nope")
    assert response.status_code == 404
    assert_request_id(response)
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/fire_404_trigger_event_not_found.json"))
    assert body["code"] == "TRIGGER_EVENT_NOT_FOUND"
    assert body["message"] == "Trigger event 'tri_nope' was not found."


def test_no_published_automation_is_422(client: httpx.Client) -> None:
    response = fire(client, "tri_drafts")
    assert response.status_code == 422
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/fire_422_no_published_automation.json"))
    assert (body["status"], body["code"]) == ("failed", "NO_PUBLISHED_AUTOMATION")


def test_same_key_same_body_replays_the_original_runs(client: httpx.Client) -> None:
    first = fire(client, key="order-1001").json()
    again = fire(client, key="order-1001")
    assert again.status_code == 200
    replay = again.json()
    assert_shape(
        replay,
        fixture("sdk-9.3.0-dts/fire_200_triggered.json"),
        optional={"$.details.idempotencyKey"},
    )
    assert (replay["status"], replay["code"]) == ("idempotent_replay", "IDEMPOTENT_REPLAY")
    for field in ("automationRunIds", "triggerInstanceId", "idempotencyKey"):
        assert replay["details"][field] == first["details"][field]
    assert replay["details"]["idempotencyKey"] == "order-1001"
    assert len(runs_of(client, "tri_signup")) == 1


def test_same_key_other_body_conflicts(client: httpx.Client) -> None:
    fire(client, payload={"email": "a@b.co"}, key="order-1002")
    response = fire(client, payload={"email": "other@b.co"}, key="order-1002")
    assert response.status_code == 409
    body = response.json()
    assert_shape(body, REFUSALS[409], optional={"$.triggerEventId"})
    assert (body["success"], body["status"], body["code"]) == (
        False,
        "failed",
        "IDEMPOTENCY_CONFLICT",
    )
    other_trigger = fire(client, "tri_two", payload={"email": "a@b.co"}, key="order-1002")
    assert other_trigger.status_code == 409
    assert len(runs_of(client, "tri_signup")) == 1


def test_the_legacy_body_key_works_and_the_header_wins(client: httpx.Client) -> None:
    both = fire(client, key="header-key", idempotencyKey="body-key").json()
    assert both["details"]["idempotencyKey"] == "header-key"
    header_only_new = fire(client, key="header-key-2", idempotencyKey="body-key").json()
    assert header_only_new["status"] == "triggered"  # the body key was ignored
    body_only = fire(client, idempotencyKey="body-key").json()
    assert body_only["status"] == "triggered"  # "body-key" was never the key in force
    replay = fire(client, idempotencyKey="body-key").json()
    assert replay["status"] == "idempotent_replay"
    assert replay["details"]["automationRunIds"] == body_only["details"]["automationRunIds"]
    assert fire(client, key="header-key").json()["status"] == "idempotent_replay"


@pytest.mark.parametrize("where", ["header", "body"])
def test_keys_over_100_characters_are_refused(client: httpx.Client, where: str) -> None:
    long_key = "k" * 101
    response = (
        fire(client, key=long_key) if where == "header" else fire(client, idempotencyKey=long_key)
    )
    assert response.status_code == 400
    assert_shape(response.json(), STANDARD_400)
    assert response.json()["error"]["param"] == "idempotencyKey"
    assert fire(client, key="k" * 100).status_code == 200


def test_keys_are_namespaced_per_brand(sim: SimulatorHandle) -> None:
    with (
        httpx.Client(base_url=sim.base_url, headers={"X-API-Key": "brew_brand_a"}) as a,
        httpx.Client(base_url=sim.base_url, headers={"X-API-Key": "brew_brand_b"}) as b,
    ):
        first = fire(a, payload={"email": "a@b.co"}, key="shared").json()
        second = fire(b, payload={"email": "z@b.co"}, key="shared").json()
    assert (first["status"], second["status"]) == ("triggered", "triggered")
    assert first["details"]["automationRunIds"] != second["details"]["automationRunIds"]


def test_refused_fires_are_not_remembered(client: httpx.Client) -> None:
    assert fire(client, payload={"firstName": "x"}, key="fix-me").status_code == 400
    assert fire(client, payload={"email": "a@b.co"}, key="fix-me").json()["status"] == "triggered"


def test_the_idempotency_window_is_configurable(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.reset({**TEST_SEED, "idempotencyWindowSeconds": 0.3})
    first = fire(client, key="short-lived").json()
    assert fire(client, key="short-lived").json()["status"] == "idempotent_replay"
    later = poll(
        lambda: (r := fire(client, key="short-lived").json())["status"] == "triggered" and r
    )
    assert later["details"]["automationRunIds"] != first["details"]["automationRunIds"]


def test_ready_check(client: httpx.Client) -> None:
    response = client.get("/v1/automations/triggers/tri_signup/fire")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "100"
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/fire_get_200_ready.json"))
    assert (body["status"], body["code"]) == ("ready", "TRIGGER_EVENT_READY")
    details = body["details"]
    assert details["endpoint"] == {
        "method": "POST",
        "path": "/v1/automations/triggers/tri_signup/fire",
    }
    assert details["counts"] == {"automations": 1}
    assert details["title"] == "User signed up"
    assert runs_of(client, "tri_signup") == []  # a ready check starts nothing

    missing = client.get("/v1/automations/triggers/tri_nope/fire")
    assert missing.status_code == 404
    assert_shape(missing.json(), fixture("sdk-9.3.0-dts/fire_404_trigger_event_not_found.json"))


@pytest.mark.parametrize(
    "trigger", ["clerk:org_1:brand_1:user.created", "shopify:customers/update"]
)
def test_composite_trigger_ids_travel_url_encoded(
    sim: SimulatorHandle, client: httpx.Client, trigger: str
) -> None:
    schema = {"type": "object", "fields": [{"key": "email", "type": "string", "required": True}]}
    sim.put_trigger(
        trigger,
        {"provider": "clerk", "payloadSchema": schema, "automations": [{"automationId": "a"}]},
    )
    quoted = quote(trigger, safe="")  # as the SDK's encodeURIComponent sends it
    url = httpx.URL(sim.root_url).copy_with(
        raw_path=f"/api/v1/automations/triggers/{quoted}/fire".encode()
    )
    response = client.post(url, json={"payload": {"email": "a@b.co"}})
    assert response.status_code == 200, response.text
    assert response.json()["triggerEventId"] == trigger


def test_any_brew_key_works_in_an_open_seed(sim: SimulatorHandle) -> None:
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}x"}) as c:
        assert fire(c).status_code == 200
