"""The Boring Marketing simulator's admin surface, faults, seed files and command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bm_support import BRAND, KEY, ManualClock, fire

from brew_bridge.errors import ConfigError
from brew_bridge.sim.boring_marketing.demo import DEMO_BRAND, DEMO_KEY
from brew_bridge.sim.boring_marketing.seed import load_seed
from brew_bridge.testing.boring_marketing import BoringMarketingSimulatorHandle


def run_status(client: httpx.Client, run_id: str) -> str:
    response = client.get(f"/brands/{BRAND}/runs/{run_id}", headers={"X-API-Key": KEY})
    status: str = response.json()["status"]
    return status


def test_health_and_reset_to_a_new_seed(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client
) -> None:
    assert httpx.get(f"{sim.root_url}/_sim/health").json() == {"ok": True}
    assert fire(client).status_code == 202
    sim.reset({"keys": {"bm_only_this_one": {}}})
    assert sim.runs() == []
    assert sim.requests() == []
    assert fire(client).status_code == 401  # KEY is not in the new seed
    assert fire(client, key="bm_only_this_one").status_code == 202


def test_the_request_log_masks_the_key_and_keeps_body_status_and_id(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client
) -> None:
    fired = fire(client, "brief", body={"topic": "pricing"})
    fire(client, "brief")  # 409
    first, second = sim.requests()
    assert first == {
        "at": first["at"],
        "method": "POST",
        "path": f"/brands/{BRAND}/brief",
        "apiKey": f"bm_…{KEY[-4:]}",
        "body": {"topic": "pricing"},
        "status": 202,
        "fault": None,
        "requestId": fired.headers["x-request-id"],
    }
    assert second["status"] == 409
    assert KEY not in str(sim.requests())
    sim.clear_requests()
    assert sim.requests() == []


def test_runs_lists_every_run_with_its_endpoint_stuck_flag_and_body(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    run_id = fire(client, "execute", body={"brief_id": "b-1"}).json()["run_id"]
    clock.advance(0.5)  # running: 0.2 s queued, then a 1 s stage (the defaults)
    (row,) = sim.runs()
    assert (row["id"], row["endpoint"], row["kind"], row["stuck"], row["body"]) == (
        run_id,
        "execute",
        "execution",
        False,
        {"brief_id": "b-1"},
    )
    stuck = sim.stick(run_id)
    assert (stuck["stuck"], stuck["status"]) == (True, "running")
    clock.advance(3600)
    assert run_status(client, run_id) == "running"
    refused = httpx.put(f"{sim.root_url}/_sim/runs/{run_id}", json={"stuck": False})
    assert refused.status_code == 400
    client.post(f"/brands/{BRAND}/runs/{run_id}/cancel", headers={"X-API-Key": KEY})
    ended = httpx.put(f"{sim.root_url}/_sim/runs/{run_id}", json={"stuck": True})
    assert (ended.status_code, ended.json()) == (
        400,
        {"detail": "Run is failed: only a live run gets stuck"},
    )
    assert httpx.put(f"{sim.root_url}/_sim/runs/nope", json={"stuck": True}).status_code == 404


def test_put_brand_key_and_pipeline(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    assert fire(client, "analyze", "new-brand").status_code == 404
    assert sim.put_brand("new-brand", {"name": "New"}) == {
        "id": "new-brand",
        "name": "New",
        "domain": "example.com",
    }
    assert sim.put_key(KEY, {"brands": [BRAND]}) == {"brands": [BRAND], "revoked": False}
    assert fire(client, "analyze", "new-brand").status_code == 404  # not this key's brand
    sim.put_key(KEY, {})
    row = sim.put_pipeline("enrich/brand", {"stageMs": 500, "queuedMs": 0, "outcome": "failed"})
    assert (row["endpoint"], row["kind"], row["stages"], row["stageMs"]) == (
        "enrich/brand",
        "brand_enrichment",
        ["brand_enrichment"],
        {"brand_enrichment": 500.0},
    )
    run_id = fire(client, "enrich/brand", "new-brand").json()["run_id"]
    clock.advance(1)
    answered = client.get(f"/brands/new-brand/runs/{run_id}", headers={"X-API-Key": KEY})
    assert answered.json()["status"] == "failed"
    sim.put_key(KEY, {"revoked": True})
    assert fire(client, "brief").status_code == 401


def test_a_bad_admin_body_is_a_400_naming_the_field(sim: BoringMarketingSimulatorHandle) -> None:
    bad = httpx.put(f"{sim.root_url}/_sim/pipelines/analyze", json={"outcome": "maybe"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("pipeline.outcome: unknown outcome 'maybe'")
    unknown = httpx.put(f"{sim.root_url}/_sim/pipelines/nope", json={})
    assert unknown.status_code == 400
    assert "unknown pipeline endpoint" in unknown.json()["detail"]


def test_outcome_sequences_cycle_and_failure_draws_repeat_with_the_seed(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client, clock: ManualClock
) -> None:
    def outcomes(pipeline: dict[str, object], fires: int) -> list[str]:
        sim.reset({"pipelines": {"brief": {"queuedMs": 0, "stageMs": 100, **pipeline}}})
        ended = []
        for _ in range(fires):
            run_id = fire(client, "brief").json()["run_id"]
            clock.advance(1)
            ended.append(run_status(client, run_id))
        return ended

    assert outcomes({"outcomes": ["failed", "done"]}, 4) == ["failed", "done", "failed", "done"]
    drawn = outcomes({"failureRate": 0.5}, 20)
    assert set(drawn) == {"done", "failed"}
    assert outcomes({"failureRate": 0.5}, 20) == drawn


def test_injected_errors_and_429s_do_no_work(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client
) -> None:
    sim.put_faults(
        {
            "fire": {
                "next": [
                    {"fault": "error", "status": 503, "retryAfter": 2},
                    {"fault": "error", "status": 502, "body": "html"},
                    {"fault": "rateLimit", "retryAfter": 7},
                ]
            }
        }
    )
    unavailable, gateway, limited = fire(client), fire(client), fire(client)
    assert (unavailable.status_code, unavailable.json()) == (
        503,
        {"detail": "Service Unavailable"},
    )
    assert unavailable.headers["retry-after"] == "2"
    assert gateway.status_code == 502
    assert gateway.headers["content-type"].startswith("text/html")
    assert (limited.status_code, limited.json()) == (429, {"detail": "Rate limit exceeded"})
    assert limited.headers["retry-after"] == "7"
    assert sim.runs() == []
    assert [r["fault"] for r in sim.requests()] == ["error", "error", "rateLimit"]


def test_a_reset_after_the_work_leaves_a_run_and_no_answer(
    sim: BoringMarketingSimulatorHandle, client: httpx.Client
) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "reset"}]}})
    with pytest.raises(httpx.TransportError):
        fire(client)
    (run,) = sim.runs()
    assert fire(client).headers["x-running-run-id"] == run["id"]  # the work was done


def test_a_hang_that_the_client_gives_up_on_does_nothing(
    sim: BoringMarketingSimulatorHandle,
) -> None:
    sim.put_faults({"fire": {"next": [{"fault": "hang", "seconds": 30}]}})
    with (
        httpx.Client(base_url=sim.base_url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        fire(impatient)
    assert sim.runs() == []


def test_a_seed_file_problem_names_its_line(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("pipelines:\n  analyze:\n    stageMs: 100\n    outcome: maybe\n")
    with pytest.raises(ConfigError) as caught:
        load_seed(seed)
    (problem,) = caught.value.problems
    assert (problem.key_path, problem.line) == ("seed.pipelines.analyze.outcome", 4)
    seed.write_text("pipelines:\n  analyze: {stageMs: 100, outcome: failed}\n")
    assert load_seed(seed).pipeline("analyze").outcome == "failed"


def test_the_command_line_serves_the_demo_and_says_where_first() -> None:
    command = [
        sys.executable,
        "-m",
        "brew_bridge.cli.sim",
        "--target",
        "boring-marketing",
        "--port",
        "0",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            assert banner.startswith("brew-bridge sim: Boring Marketing API at http://127.0.0.1:")
            url = banner.split(" at ", 1)[1].split(" ", 1)[0]
            with httpx.Client(base_url=url, timeout=5.0) as http:
                fired = fire(http, "analyze", DEMO_BRAND, key=DEMO_KEY)
            assert fired.status_code == 202
        finally:
            server.terminate()
            server.wait(timeout=10)
