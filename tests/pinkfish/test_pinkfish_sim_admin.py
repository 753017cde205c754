"""The Pinkfish simulator's admin surface over real HTTP: outcomes, stuck runs, keys,
faults and the request log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pinkfish_support import KEY, TEST_SEED, ManualClock, fire, poll, read

from brew_bridge.testing.pinkfish import PinkfishSimulatorHandle, running_pinkfish_simulator


def status(client: httpx.Client, fired: httpx.Response) -> str:
    value: str = read(client, fired).json()["status"]
    return value


def ended(client: httpx.Client, clock: ManualClock, trigger: str, count: int) -> list[str]:
    """The end of ``count`` runs of ``trigger``, in fire order."""
    runs = [fire(client, trigger) for _ in range(count)]
    clock.advance(60.0)
    return [status(client, fired) for fired in runs]


def test_an_outcome_sequence_is_cycled_one_per_fire(
    sim: PinkfishSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    row = sim.put_trigger("trg_seq", {"outcomes": ["COMPLETE", "FAILED", "TIMEOUT"]})
    assert row["outcomes"] == ["COMPLETE", "FAILED", "TIMEOUT"]
    assert ended(client, clock, "trg_seq", 4) == ["COMPLETE", "FAILED", "TIMEOUT", "COMPLETE"]


def test_probabilities_draw_the_same_outcomes_from_the_same_seed(
    sim: PinkfishSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    spec: dict[str, Any] = {"probabilities": {"COMPLETE": 0.5, "FAILED": 0.5}, "randomSeed": 7}
    sim.put_trigger("trg_draw", spec)
    first = ended(client, clock, "trg_draw", 12)
    sim.put_trigger("trg_draw", spec)  # a trigger put again starts its draws again
    assert ended(client, clock, "trg_draw", 12) == first
    assert set(first) == {"COMPLETE", "FAILED"}
    sim.put_trigger("trg_draw", {**spec, "randomSeed": 8})
    assert ended(client, clock, "trg_draw", 12) != first


def test_a_stuck_trigger_runs_stay_running_until_unstuck(
    sim: PinkfishSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client, "trg_stuck")
    assert status(client, fired) == "PENDING"
    clock.advance(3600.0)
    assert read(client, fired).json()["stepStatus"] == {"1": "RUNNING"}
    (row,) = sim.runs()
    assert (row["status"], row["stuck"]) == ("RUNNING", True)
    sim.stick(fired.headers["X-Pf-Run-Id"], stuck=False)
    clock.advance(0.3)  # 0.1 s pending, then 0.4 s of running were left
    assert status(client, fired) == "RUNNING"
    clock.advance(0.2)
    assert status(client, fired) == "COMPLETE"


def test_any_run_can_be_made_stuck_where_it_is(
    sim: PinkfishSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    fired = fire(client)
    clock.advance(0.5)
    row = sim.stick(fired.headers["X-Pf-Run-Id"])
    assert (row["status"], row["stuck"]) == ("RUNNING", True)
    clock.advance(3600.0)
    assert status(client, fired) == "RUNNING"
    with pytest.raises(RuntimeError, match="404"):
        sim.stick("1")


def test_a_key_revoked_while_running_is_refused_from_then_on(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fired = fire(client)
    assert sim.put_key(KEY, {"account": "acme", "revoked": True}) == {
        "account": "acme",
        "revoked": True,
    }
    assert read(client, fired).status_code == 401
    assert fire(client).status_code == 401
    sim.put_key("pf_key_acme_rotated_1", {"account": "acme"})
    assert read(client, fired, key="pf_key_acme_rotated_1").status_code == 200  # same account


def test_the_request_log_masks_the_key_and_leaves_admin_routes_out(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fired = fire(client)
    read(client, fired)
    read(client, fired, "results")
    sim.runs()
    logged = sim.requests()
    automation_id, run_id = fired.headers["X-Pf-Automation-Id"], fired.headers["X-Pf-Run-Id"]
    assert [(r["method"], r["path"], r["status"]) for r in logged] == [
        ("POST", "/ext/triggers/trg_hello", 200),
        ("GET", f"/ext/webhook/***/runs/{automation_id}/{run_id}/status", 200),
        ("GET", f"/ext/webhook/***/runs/{automation_id}/{run_id}/results", 200),
    ]
    assert KEY not in str(logged)
    assert all(r["requestId"] for r in logged)
    sim.clear_requests()
    assert sim.requests() == []


def test_reset_goes_back_to_the_seed_or_to_a_new_one(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    sim.put_trigger("trg_extra", {})
    fire(client, "trg_extra")
    sim.reset()
    assert sim.runs() == []
    assert fire(client, "trg_extra").status_code == 404
    sim.reset({"triggers": {"trg_new": {"steps": 2}}})
    assert fire(client, "trg_new", key="pf_any_key_at_all").status_code == 200
    assert fire(client, "trg_hello").status_code == 404
    sim.reset(TEST_SEED)


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/_sim/triggers/trg_x", {"outcome": "DONE"}, "trigger.outcome"),
        ("/_sim/triggers/trg_x", {"outcomes": ["COMPLETE"], "probabilities": {}}, "trigger"),
        ("/_sim/triggers/trg_x", {"probabilities": {"COMPLETE": 0.5}}, "trigger.probabilities"),
        ("/_sim/triggers/trg_x", {"steps": 0}, "trigger.steps"),
        ("/_sim/keys/pf_key_x_12345", {"revoked": "yes"}, "key.revoked"),
        ("/_sim/faults", {"fire": {"errorRate": 2}}, "faults.fire.errorRate"),
    ],
)
def test_a_bad_admin_body_is_a_400_naming_the_field(
    sim: PinkfishSimulatorHandle, path: str, body: dict[str, Any], where: str
) -> None:
    with httpx.Client(base_url=sim.root_url) as admin:
        response = admin.put(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_REQUEST"
    assert response.json()["message"].startswith(where)


# -- faults -------------------------------------------------------------------------------


def fault(sim: PinkfishSimulatorHandle, scope: str, **step: Any) -> None:
    sim.put_faults({scope: {"next": [step]}})


def test_an_injected_error_happens_before_any_work(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fault(sim, "fire", fault="error", status=503, retryAfter=2)
    response = fire(client)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"error": "SERVICE_UNAVAILABLE", "message": "Service unavailable."}
    assert sim.runs() == []
    assert [(r["status"], r["fault"]) for r in sim.requests()] == [(503, "error")]
    assert fire(client).status_code == 200


@pytest.mark.parametrize(("body", "content_type"), [("html", "text/html"), ("empty", None)])
def test_injected_errors_may_have_bodies_that_are_not_json(
    sim: PinkfishSimulatorHandle, client: httpx.Client, body: str, content_type: str | None
) -> None:
    fired = fire(client)
    fault(sim, "read", fault="error", status=502, body=body)
    response = read(client, fired)
    assert response.status_code == 502
    assert response.headers.get("content-type", "").split(";")[0] == (content_type or "")


def test_a_rate_limit_fault_answers_429_with_retry_after(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fault(sim, "fire", fault="rateLimit", retryAfter=3)
    response = fire(client)
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
    assert response.json()["error"] == "RATE_LIMITED"
    assert sim.runs() == []


def test_a_reset_after_the_work_starts_the_run_and_answers_nothing(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fault(sim, "fire", fault="reset")
    with pytest.raises(httpx.TransportError):
        fire(client)
    assert len(sim.runs()) == 1  # the unknown outcome: it ran
    assert [(r["status"], r["fault"]) for r in sim.requests()] == [(200, "reset")]


def test_an_error_after_the_work_starts_the_run_and_answers_5xx(
    sim: PinkfishSimulatorHandle, client: httpx.Client
) -> None:
    fault(sim, "fire", fault="errorAfterWork", status=500)
    assert fire(client).status_code == 500
    assert len(sim.runs()) == 1


def test_a_hang_past_the_clients_timeout_leaves_nothing_done(
    sim: PinkfishSimulatorHandle,
) -> None:
    fault(sim, "fire", fault="hang", seconds=30)
    with (
        httpx.Client(base_url=sim.base_url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        fire(impatient)
    assert sim.runs() == []
    # The simulator sees the client leave (status 0: no answer) soon after it gave up.
    poll(lambda: [(r["fault"], r["status"]) for r in sim.requests()] == [("hang", 0)])


def test_the_demo_seed_parses() -> None:
    from brew_bridge.sim.pinkfish.demo import DEMO_SEED

    with running_pinkfish_simulator(DEMO_SEED) as sim, httpx.Client(base_url=sim.base_url) as c:
        assert fire(c, "trg_hello", key="pf_demo_key_1234").status_code == 200
