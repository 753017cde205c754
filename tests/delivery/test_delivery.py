"""Delivery over real HTTP: outbox rows -> fires at the simulator -> runs polled to their end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from delivery_support import (
    API_KEY,
    SCHEMA,
    all_ended,
    automation,
    bridge_config,
    eventually,
    fires_by_key,
    metric,
    outbox_view,
    queue,
    running_worker,
    scrape,
    seed,
    sim_runs_by_email,
    trigger,
)

from brew_bridge.config import RouteConfig, TriggerConfig
from brew_bridge.testing.simulator import running_simulator

BRIDGE = [sys.executable, "-m", "brew_bridge"]
TRIGGERS = {
    "tri_welcome": trigger(automation("auto_welcome", ms=300)),
    # One fire starts two runs; the CRM one fails.
    "tri_receipt": trigger(
        automation("auto_receipt", ms=200),
        automation("auto_crm", outcome="failed", ms=300, error="CRM refused the contact"),
    ),
    "tri_draft": trigger(automation("auto_draft", published=False)),
}


def _mixed_batch() -> list[tuple[str, str, str, dict[str, Any]]]:
    items: list[tuple[str, str, str, dict[str, Any]]] = [
        ("welcome", "tri_welcome", f"welcome:u{i}", {"email": f"u{i}@example.com"})
        for i in range(5)
    ]
    items += [
        ("receipt", "tri_receipt", f"receipt:r{i}", {"email": f"r{i}@example.com"})
        for i in range(2)
    ]
    items += [
        ("ghost", "tri_missing", "ghost:g0", {"email": "g0@example.com"}),  # 404
        ("welcome", "tri_welcome", "welcome:bad", {"firstName": "No Email"}),  # 400
        ("draft", "tri_draft", "draft:d0", {"email": "d0@example.com"}),  # 422
    ]
    return items


@pytest.mark.parametrize("api_shape", ["9.3", "10"])
async def test_rows_fire_once_and_every_run_is_followed_to_its_end(
    tmp_path: Path, api_shape: str
) -> None:
    with running_simulator(seed(TRIGGERS), api_shape=api_shape) as sim:
        config = bridge_config(tmp_path, sim, retry={"no_published_automation_max_seconds": 0})
        queued = queue(config, _mixed_batch())
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), what="every delivery and run to end")
            values = await scrape(worker)
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"http://127.0.0.1:{worker.port}/readyz")
            assert ready.status_code == 200

        # The simulator saw one accepted fire per accepted key, with its payload and key.
        fires = fires_by_key(sim)
        for d in queued:
            attempts = fires[d.idempotency_key]
            assert len(attempts) == 1, d.idempotency_key
            assert attempts[0]["body"] == {"payload": d.payload}
        assert {k: v[0]["status"] for k, v in fires.items() if v[0]["status"] != 200} == {
            "ghost:g0": 404,
            "welcome:bad": 400,
            "draft:d0": 422,
        }
        runs_at_sim = sim_runs_by_email(sim)
        assert runs_at_sim == {
            **{f"u{i}@example.com": 1 for i in range(5)},
            **{f"r{i}@example.com": 2 for i in range(2)},
        }

    outbox = outbox_view(config)
    try:
        stats = outbox.stats(0)
        assert stats.runs_by_status == {"completed": 7, "failed": 2}
        assert stats.deliveries["fired"] == 7
        assert stats.deliveries["dead"] == 3
        dead = {(dl.stage, dl.reason, dl.idempotency_key): dl for dl in outbox.dead_letters()}
    finally:
        outbox.close()

    assert set(dead) == {
        ("run", "run_failed", "receipt:r0"),
        ("run", "run_failed", "receipt:r1"),
        ("fire", "fire_rejected", "ghost:g0"),
        ("fire", "fire_rejected", "welcome:bad"),
        ("fire", "no_published_automation", "draft:d0"),
    }
    failed_run = dead[("run", "run_failed", "receipt:r0")]
    assert failed_run.details is not None
    assert failed_run.details["error"] == "CRM refused the contact"
    logs = failed_run.details["logs"]
    assert logs, "a failed run's dead letter carries its node logs"
    assert logs[-1]["status"] in ("error", "failed")
    rejected = dead[("fire", "fire_rejected", "ghost:g0")]
    assert rejected.code == "TRIGGER_EVENT_NOT_FOUND"
    assert rejected.details is not None
    assert rejected.details["status"] == 404  # the whole envelope is kept
    assert rejected.details["requestId"].startswith("req_")
    invalid = dead[("fire", "fire_rejected", "welcome:bad")]
    assert invalid.code in ("INVALID_PAYLOAD", "PAYLOAD_MISMATCH")

    # What /metrics said while the bridge ran.
    assert metric(values, "brew_bridge_fires_total", route="welcome", code="TRIGGERED") == 5
    assert metric(values, "brew_bridge_fires_total", route="receipt", code="TRIGGERED") == 2
    assert metric(values, "brew_bridge_runs_started_total") == 9
    assert metric(values, "brew_bridge_runs_terminal_total", status="completed") == 7
    assert metric(values, "brew_bridge_runs_terminal_total", route="receipt", status="failed") == 2
    assert metric(values, "brew_bridge_run_duration_seconds_count", route="welcome") == 5
    assert metric(values, "brew_bridge_dead_letters_total", stage="run", reason="run_failed") == 2
    assert metric(values, "brew_bridge_dead_letters_total", reason="fire_rejected") == 2
    assert metric(values, "brew_bridge_dead_letters_total", reason="no_published_automation") == 1
    assert metric(values, "brew_bridge_run_reads_total", mode="list") >= 1
    assert metric(values, "brew_bridge_circuit_open") == 0


async def test_list_reads_resolve_many_runs_each(tmp_path: Path) -> None:
    with running_simulator(seed({"tri_welcome": trigger(automation("a", ms=400))})) as sim:
        config = bridge_config(tmp_path, sim, poller={"interval_seconds": 1.0})
        queue(
            config,
            [
                ("welcome", "tri_welcome", f"k{i}", {"email": f"u{i}@example.com"})
                for i in range(40)
            ],
        )
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), what="every run to end")
            values = await scrape(worker)
    reads = metric(values, "brew_bridge_run_reads_total")
    assert metric(values, "brew_bridge_runs_terminal_total", status="completed") == 40
    assert reads <= 8, f"{reads} reads for 40 runs: list mode should resolve many per read"


async def test_a_run_past_its_deadline_is_canceled_and_timed_out(tmp_path: Path) -> None:
    with running_simulator(seed({"tri_slow": trigger(automation("slow", ms=60_000))})) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            poller={"run_deadline_seconds": 1.0, "cancel_on_deadline": True},
        )
        queue(config, [("slow", "tri_slow", "slow:1", {"email": "s@example.com"})])
        async with running_worker(config) as worker:
            await eventually(lambda: all_ended(config), what="the run to time out")
            values = await scrape(worker)
        (run,) = list(sim.state.run_order)
        assert run.canceled_at is not None, "the run was canceled at Brew"

    outbox = outbox_view(config)
    try:
        (dl,) = outbox.dead_letters()
    finally:
        outbox.close()
    assert (dl.stage, dl.reason, dl.code) == ("run", "run_timed_out", "timed_out")
    assert dl.details is not None
    assert dl.details["logs"], "the timed-out run's logs are kept"
    assert metric(values, "brew_bridge_runs_terminal_total", status="timed_out") == 1


async def test_a_route_with_its_own_deadline_times_out_while_the_others_wait(
    tmp_path: Path,
) -> None:
    """An automation that waits for days must not be cut off at another route's deadline."""
    with running_simulator(seed({"tri_slow": trigger(automation("slow", ms=60_000))})) as sim:
        config = bridge_config(tmp_path, sim)
        route = {"topics": ["t"], "trigger": "tri_slow", "payload": {"email": "event.email"}}
        config = config.model_copy(
            update={
                # The worker describes its subscriptions at start (/asyncapi.json), which
                # compiles the routes: the trigger they fire is declared.
                "triggers": {"tri_slow": TriggerConfig(payload_schema=SCHEMA)},
                "routes": [
                    RouteConfig.model_validate(
                        {**route, "name": "quick", "run_deadline_seconds": 1}
                    ),
                    RouteConfig.model_validate({**route, "name": "patient"}),
                ],
            }
        )
        queue(
            config,
            [
                ("quick", "tri_slow", "quick:1", {"email": "q@example.com"}),
                ("patient", "tri_slow", "patient:1", {"email": "p@example.com"}),
            ],
        )

        def timed_out() -> list[str | None]:
            outbox = outbox_view(config)
            try:
                return [dl.route for dl in outbox.dead_letters(reason="run_timed_out")]
            finally:
                outbox.close()

        async with running_worker(config):
            await eventually(lambda: timed_out() == ["quick"], what="the quick route to time out")
            outbox = outbox_view(config)
            try:
                assert [r.route for r in outbox.live_runs()] == ["patient"]
            finally:
                outbox.close()


async def _a1_stuck_then_published(
    tmp_path: Path,
    items: list[tuple[str, str, str, dict[str, Any]]],
    *,
    fires_meanwhile: str,
    held: str,
    dispatcher: dict[str, Any] | None = None,
) -> list[str]:
    """Run ``items`` while a1's trigger answers 422 (unpublished): ``fires_meanwhile``
    must fire and ``held`` must not while a1 retries; then publish the trigger, let
    everything end, and return the accepted fires' keys in order."""
    triggers = {
        "tri_welcome": trigger(automation("welcome", ms=100)),
        "tri_later": trigger(automation("later", published=False)),
    }
    with running_simulator(seed(triggers)) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            retry={
                "no_published_automation_delay_seconds": 0.2,
                "no_published_automation_max_seconds": 60,
            },
            dispatcher=dispatcher,
        )
        queue(config, items)
        async with running_worker(config):

            def accepted(key: str) -> bool:
                return any(e["status"] == 200 for e in fires_by_key(sim).get(key, []))

            await eventually(lambda: accepted(fires_meanwhile), what=f"{fires_meanwhile} to fire")
            await eventually(lambda: len(fires_by_key(sim).get("a1", [])) >= 3, what="a1 to retry")
            assert held not in fires_by_key(sim), f"{held} overtook a1, which is still queued"
            later = trigger(automation("later", ms=100))
            sim.put_trigger("tri_later", {"title": "later", **later})
            await eventually(lambda: all_ended(config), what="a1 and the rest to fire and end")
        return [
            e["idempotencyKey"]
            for e in sim.requests()
            if e["path"].endswith("/fire") and e["status"] == 200
        ]


async def test_global_ordering_fires_one_key_in_order_and_a_stuck_row_holds_only_its_key(
    tmp_path: Path,
) -> None:
    order = await _a1_stuck_then_published(
        tmp_path,
        [
            ("later", "tri_later", "a1", {"email": "a@example.com"}),  # 422 until published
            ("welcome", "tri_welcome", "a2", {"email": "a@example.com"}),
            ("welcome", "tri_welcome", "b1", {"email": "b@example.com"}),
        ],
        fires_meanwhile="b1",  # the other key
        held="a2",
        dispatcher={"ordering_scope": "global"},
    )
    assert order.index("a1") < order.index("a2")


async def test_a_stuck_row_holds_back_only_its_own_route_and_key_by_default(
    tmp_path: Path,
) -> None:
    order = await _a1_stuck_then_published(
        tmp_path,
        [
            ("later", "tri_later", "a1", {"email": "a@example.com"}),  # 422 until published
            ("later", "tri_later", "a3", {"email": "a@example.com"}),
            ("welcome", "tri_welcome", "a2", {"email": "a@example.com"}),
        ],
        fires_meanwhile="a2",  # the same person's mail on another route does not wait
        held="a3",
    )
    assert order.index("a2") < order.index("a1") < order.index("a3")


def test_cli_run_once_delivers_the_outbox_and_prints_a_summary(tmp_path: Path) -> None:
    with running_simulator(seed(TRIGGERS)) as sim:
        config = bridge_config(tmp_path, sim)
        queue(
            config,
            [
                ("welcome", "tri_welcome", "w1", {"email": "w1@example.com"}),
                ("receipt", "tri_receipt", "r1", {"email": "r1@example.com"}),
                ("ghost", "tri_missing", "g1", {"email": "g1@example.com"}),
            ],
        )
        config_file = tmp_path / "bridge.yaml"
        config_file.write_text(
            json.dumps(  # JSON is YAML
                {
                    "outbox": {"path": config.outbox.path},
                    "brew": {"base_url": sim.base_url, "timeout_seconds": 2},
                    "poller": {"interval_seconds": 0.2},
                    "server": {"host": "127.0.0.1", "port": 0},
                    "logging": {"level": "INFO"},
                    "triggers": {"tri_welcome": {"payload_schema": SCHEMA}},
                    "routes": [
                        {
                            "name": "welcome",
                            "topics": ["signups"],
                            "trigger": "tri_welcome",
                            "payload": {"email": "event.email"},
                        }
                    ],
                }
            )
        )
        done = subprocess.run(
            [*BRIDGE, "run", "--config", str(config_file), "--once", "--no-consume"],
            env={**os.environ, "BREW_API_KEY": API_KEY},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert API_KEY not in done.stderr  # the key never reaches a log line
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    fired = [e for e in logs if e["event"] == "fired"]
    assert {e["idempotency_key"] for e in fired} == {"w1", "r1"}
    assert all(e["request_id"].startswith("req_") and e["route"] for e in fired)
    summary = json.loads(done.stdout)
    assert summary["fires"] == {"TRIGGERED": 2, "TRIGGER_EVENT_NOT_FOUND": 1}
    assert summary["runs"] == {"completed": 2, "failed": 1}
    assert summary["dead_letters"] == {"fire_rejected": 1, "run_failed": 1}
    assert summary["elapsed_seconds"] > 0
