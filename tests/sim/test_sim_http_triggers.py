"""GET and POST /v1/automations/triggers over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import SCHEMA, assert_request_id, assert_shape, fire, fixture

TRIGGERS = "/v1/automations/triggers"
CREATE = fixture("sdk-9.3.0-dts/triggers_create_request.json")
ROW_OPTIONAL = {"$.data[].description"}


def test_list_in_brews_shape(client: httpx.Client) -> None:
    response = client.get(TRIGGERS)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "100"
    body = response.json()
    assert_shape(body, fixture("sdk-9.3.0-dts/triggers_list_200.json"), optional=ROW_OPTIONAL)
    assert [row["triggerEventId"] for row in body["data"]] == [
        "tri_signup",
        "tri_two",
        "tri_drafts",
        "tri_slow",
    ]
    assert body["pagination"] == {"limit": 100, "cursor": None, "hasMore": False}
    assert {row["provider"] for row in body["data"]} == {"brew_api"}


def test_list_pages(client: httpx.Client) -> None:
    first = client.get(TRIGGERS, params={"limit": 3}).json()
    assert first["pagination"]["hasMore"] is True
    second = client.get(TRIGGERS, params={"limit": 3, "cursor": first["pagination"]["cursor"]})
    assert [row["triggerEventId"] for row in second.json()["data"]] == ["tri_slow"]
    assert second.json()["pagination"] == {"limit": 3, "cursor": None, "hasMore": False}


def test_detail_and_skill(client: httpx.Client) -> None:
    body = client.get(TRIGGERS, params={"triggerEventId": "tri_signup"}).json()
    assert_shape(body, fixture("github-tests/triggers_detail_200.json"))
    assert body["data"][0]["payloadSchema"] == SCHEMA
    with_skill = client.get(TRIGGERS, params={"triggerEventId": "tri_signup", "include": "skill"})
    assert with_skill.json()["data"][0]["skill"].startswith("# Fire tri_signup")
    missing = client.get(TRIGGERS, params={"triggerEventId": "tri_nope"})
    assert missing.status_code == 404
    assert_request_id(missing)
    assert_shape(missing.json(), fixture("sdk-9.3.0-dts/triggers_404_trigger_event_not_found.json"))


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": "0"}, "limit"), ({"cursor": "zz"}, "cursor"), ({"brandId": "b"}, "brandId")],
)
def test_list_refusals(client: httpx.Client, params: dict[str, str], param: str) -> None:
    response = client.get(TRIGGERS, params=params)
    assert response.status_code == 400
    assert_shape(response.json(), fixture("sdk-9.3.0-dts/triggers_list_400_invalid_request.json"))
    assert response.json()["error"]["param"] == param


def test_create_mints_an_id_and_the_trigger_is_live(client: httpx.Client) -> None:
    response = client.post(TRIGGERS, json=CREATE)
    assert response.status_code == 201
    assert response.headers["x-ratelimit-limit"] == "60"
    row = response.json()
    assert_shape(row, fixture("sdk-9.3.0-dts/triggers_create_201.json"))
    assert row["triggerEventId"].startswith("tri_")
    assert (row["provider"], row["title"]) == ("brew_api", CREATE["title"])
    assert row["payloadSchema"] == CREATE["payloadSchema"]
    listed = client.get(TRIGGERS, params={"triggerEventId": row["triggerEventId"]}).json()
    assert listed["data"] == [row]
    # Nothing is attached to a new trigger yet: a fire is refused, not lost.
    assert fire(client, row["triggerEventId"]).status_code == 422


def test_create_without_email_is_refused(client: httpx.Client) -> None:
    schema = {"type": "object", "fields": [{"key": "name", "type": "string", "required": True}]}
    response = client.post(TRIGGERS, json={"title": "No email", "payloadSchema": schema})
    assert response.status_code == 400
    body = response.json()
    assert_shape(
        body, fixture("sdk-9.3.0-dts/triggers_create_400_payload_schema_email_required.json")
    )
    assert (body["error"]["code"], body["error"]["param"]) == (
        "PAYLOAD_SCHEMA_EMAIL_REQUIRED",
        "payloadSchema",
    )


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"provider": "brew_api"}, "provider"),
        ({"brandId": "b"}, "brandId"),
        ({"title": ""}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"description": 5}, "description"),
        ({"payloadSchema": {"type": "object", "fields": "email"}}, "payloadSchema"),
    ],
)
def test_create_refusals(client: httpx.Client, change: dict[str, Any], param: str) -> None:
    response = client.post(TRIGGERS, json={**CREATE, **change})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert len(client.get(TRIGGERS).json()["data"]) == 4


def test_create_honours_idempotency_keys(client: httpx.Client) -> None:
    first = client.post(TRIGGERS, json=CREATE, headers={"Idempotency-Key": "create-1"})
    again = client.post(TRIGGERS, json=CREATE, headers={"Idempotency-Key": "create-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    other = client.post(
        TRIGGERS, json={**CREATE, "title": "Other"}, headers={"Idempotency-Key": "create-1"}
    )
    assert other.status_code == 409
    assert_shape(other.json(), fixture("sdk-9.3.0-dts/error_409_idempotency_conflict.json"))
    assert len(client.get(TRIGGERS).json()["data"]) == 5


def test_created_triggers_belong_to_their_brand(client: httpx.Client) -> None:
    created = client.post(TRIGGERS, json=CREATE).json()["triggerEventId"]
    base = str(client.base_url)
    with httpx.Client(base_url=base, headers={"X-API-Key": "brew_other_brand"}) as other:
        assert other.get(TRIGGERS, params={"triggerEventId": created}).status_code == 404
        assert created not in [t["triggerEventId"] for t in other.get(TRIGGERS).json()["data"]]
        assert fire(other, created).status_code == 404
