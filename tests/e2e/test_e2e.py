"""End to end: the sample events on a real Kafka broker -> `brew-bridge run` (a real process)
-> the Brew simulator over HTTP -> every run followed to its end -> /metrics, dead letters.

The simulator is seeded from config/sim-seed.yaml with two changes that make Brew refuse
fires for good: the CRM trigger does not exist (404) and the shipping trigger has no
published automation (422). So every kind of ending shows up: completed runs, a failed
run (the dunning SMS), permanent fire refusals, and ingest dead letters (broken samples).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from delivery_support import fires_by_key, metric, parse_metrics
from e2e_support import BridgeProcess

from brew_bridge.config import load_config
from brew_bridge.store import Outbox
from brew_bridge.testing.kafka import BrokerHandle, kafka_routes_only
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
SIM_SEED = REPO / "config" / "sim-seed.yaml"
# The topics the example's Brew routes read (the other targets have their own e2e tests).
_BREW_TOPICS = {
    topic
    for route in kafka_routes_only(yaml.safe_load(EXAMPLE.read_text()))["routes"]
    for topic in route["topics"]
}
MANIFEST = [  # the samples that arrive on those (the others are saved webhook deliveries)
    sample
    for sample in yaml.safe_load((REPO / "config" / "samples" / "manifest.yaml").read_text())[
        "samples"
    ]
    if sample.get("topic") in _BREW_TOPICS
]
API_KEY = "brew_e2e_key"
ENV = {
    "BREW_API_KEY": API_KEY,
    # The oversized sample is over this limit (the manifest's env for it); the rest fit.
    "BREW_BRIDGE_KAFKA__MAX_RECORD_BYTES": "32768",
    # 422 NO_PUBLISHED_AUTOMATION: give up at once instead of waiting for a publish.
    "BREW_BRIDGE_BREW__RETRY__NO_PUBLISHED_AUTOMATION_MAX_SECONDS": "0",
}
MISSING_TRIGGER = "tri_crm_payment"  # crm_invoice_paid: 404 -> fire_rejected
UNPUBLISHED_TRIGGER = "tri_order_shipped"  # order_shipped: 422 -> no_published_automation


def _seed() -> dict[str, Any]:
    seed: dict[str, Any] = yaml.safe_load(SIM_SEED.read_text())
    del seed["triggers"][MISSING_TRIGGER]
    for automation in seed["triggers"][UNPUBLISHED_TRIGGER]["automations"]:
        automation["published"] = False
    return seed


class Setup:
    """The config, topics and expectations of one end-to-end run."""

    def __init__(self, tmp_path: Path, broker: BrokerHandle, sim: SimulatorHandle) -> None:
        uid = uuid.uuid4().hex[:8]
        # Kafka only: the webhook sources are the webhook tests' (tests/webhooks).
        doc = kafka_routes_only(yaml.safe_load(EXAMPLE.read_text()))
        self.topics: dict[str, str] = {}
        for route in doc["routes"]:
            route["topics"] = [self.topics.setdefault(t, f"{t}-{uid}") for t in route["topics"]]
        self.dlq_topic = f"dlq-{uid}"
        self.result_topic = f"results-{uid}"
        self.group = f"bridge-{uid}"
        doc["kafka"].update(
            bootstrap_servers=broker.bootstrap_servers,
            group_id=self.group,
            dlq_topic=self.dlq_topic,
            result_topic=self.result_topic,
            poll_timeout_ms=200,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        doc["outbox"].update(path=str(tmp_path / "outbox.db"), synchronous="NORMAL")
        doc["brew"].update(base_url=sim.base_url, timeout_seconds=5.0)
        doc["poller"].update(interval_seconds=0.5)
        doc["server"].update(host="127.0.0.1", port=0)
        doc["logging"].update(level="INFO", format="json")
        self.config_file = tmp_path / "bridge.yaml"
        self.config_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.config = load_config(self.config_file, env=ENV)
        for topic in [*self.topics.values(), self.dlq_topic, self.result_topic]:
            broker.create_topic(topic, partitions=2)

        seed = _seed()
        route_trigger = {r.name: r.trigger for r in self.config.routes}
        published = {
            tid: [a for a in t["automations"] if a["published"]]
            for tid, t in seed["triggers"].items()
        }
        self.deliveries: list[tuple[dict[str, Any], str]] = [
            (sample, route) for sample in MANIFEST for route in sample["expect"].get("deliver", [])
        ]
        accepted = [
            (s, r) for s, r in self.deliveries if published.get(route_trigger[r])
        ]  # Brew starts runs for these
        self.accepted = accepted
        self.route_trigger = route_trigger
        self.runs = Counter(a["outcome"] for _s, r in accepted for a in published[route_trigger[r]])
        self.ingest_dead = Counter(
            dl["reason"] for s in MANIFEST for dl in s["expect"].get("dead_letters", [])
        )
        self.dead_letters = self.ingest_dead + Counter(
            {"fire_rejected": 1, "no_published_automation": 1, "run_failed": self.runs["failed"]}
        )

    def produce(self, broker: BrokerHandle) -> None:
        for sample in MANIFEST:
            value = (REPO / "config" / "samples" / sample["file"]).read_bytes()
            key = sample.get("key")
            headers = [(k, str(v).encode()) for k, v in sample.get("headers", {}).items()]
            broker.produce(
                self.topics[sample["topic"]],
                [value],
                keys=[key.encode() if key is not None else None],
                headers=[headers],
            )


def _wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _assert_fired_once_each(setup: Setup, sim: SimulatorHandle) -> None:
    """One accepted fire per (event, route), with the mapped payload and a stable key."""
    fires = fires_by_key(sim)
    assert all(len(v) == 1 for v in fires.values()), "a key was fired twice"
    ok = [v[0] for v in fires.values() if v[0]["status"] == 200]
    assert len(ok) == len(setup.accepted)
    refused = Counter(v[0]["status"] for v in fires.values() if v[0]["status"] != 200)
    assert refused == {404: 1, 422: 1}
    for sample, route in setup.deliveries:
        expected = sample["expect"].get("payload", {}).get(route)
        if expected is None:
            continue
        path = f"/api/v1/automations/triggers/{setup.route_trigger[route]}/fire"
        bodies = [e["body"]["payload"] for v in fires.values() for e in v if e["path"] == path]
        assert any(expected.items() <= body.items() for body in bodies), (route, expected)


@pytest.mark.parametrize("api_shape", ["9.3", "10"])
def test_samples_flow_through_kafka_and_brew_to_their_end(
    tmp_path: Path, broker: BrokerHandle, api_shape: str
) -> None:
    with running_simulator(_seed(), api_shape=api_shape) as sim:
        setup = Setup(tmp_path, broker, sim)
        setup.produce(broker)
        bridge = BridgeProcess(["run", "--config", str(setup.config_file)], ENV)
        try:
            port = bridge.wait_for_log("http server listening")["port"]
            base = f"http://127.0.0.1:{port}"
            expected_runs = sum(setup.runs.values())
            dead_total = sum(setup.dead_letters.values())

            def scraped() -> dict[str, float]:
                return parse_metrics(httpx.get(f"{base}/metrics").text)

            def finished() -> bool:
                values = scraped()
                return (
                    metric(values, "brew_bridge_runs_terminal_total") == expected_runs
                    and metric(values, "brew_bridge_dead_letters_total") == dead_total
                    and metric(
                        values, "brew_bridge_kafka_publishes_total", topic_kind="dlq", outcome="ok"
                    )
                    == dead_total
                )

            _wait_until(finished, 60, "every run to end and every dead letter on the DLQ topic")
            values = scraped()
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            _assert_fired_once_each(setup, sim)
        finally:
            code = bridge.stop()
        assert code == 0, bridge.stderr[-3000:]

    assert API_KEY not in bridge.stderr
    # Graceful stop: every consumed offset is committed.
    for topic in setup.topics.values():
        committed = broker.committed(setup.group, topic)
        for partition, end in broker.end_offsets(topic).items():
            assert (committed.get(partition) or 0) == end, (topic, partition)
    assert sum(broker.end_offsets(setup.dlq_topic).values()) == dead_total

    # /metrics told the whole story.
    assert metric(values, "brew_bridge_events_consumed_total") == len(MANIFEST)
    assert metric(values, "brew_bridge_fires_total", code="TRIGGERED") == len(setup.accepted)
    assert metric(values, "brew_bridge_fires_total", code="TRIGGER_EVENT_NOT_FOUND") == 1
    assert metric(values, "brew_bridge_fires_total", code="NO_PUBLISHED_AUTOMATION") == 1
    for status, n in setup.runs.items():
        assert metric(values, "brew_bridge_runs_terminal_total", status=status) == n, status
    for reason, n in setup.dead_letters.items():
        assert metric(values, "brew_bridge_dead_letters_total", reason=reason) == n, reason
    assert metric(values, "brew_bridge_runs_in_flight") == 0
    assert metric(values, "brew_bridge_run_reads_total", mode="list") >= 1

    # The outbox keeps each dead letter with its reason and what explains it.
    # Every run's end is on the result topic, with the event it came from.
    results = [json.loads(r.value) for r in broker.read(setup.result_topic, expected_runs)]
    assert len(results) == expected_runs
    outbox = Outbox.open(setup.config.outbox.path)
    try:
        dead = outbox.dead_letters(limit=1000)
        runs = {r["runId"]: outbox.run(r["runId"]) for r in results}
    finally:
        outbox.close()
    for result in results:
        run = runs[result["runId"]]
        assert run is not None
        assert result["eventId"] is not None
        assert result["eventId"] == run.event_id
        assert (result["route"], result["idempotencyKey"]) == (run.route, run.idempotency_key)
    assert Counter(dl.reason for dl in dead) == setup.dead_letters
    by_reason = {dl.reason: dl for dl in dead}
    rejected = by_reason["fire_rejected"]
    assert (rejected.route, rejected.code) == ("crm_invoice_paid", "TRIGGER_EVENT_NOT_FOUND")
    assert rejected.details is not None
    assert rejected.details["status"] == 404
    assert by_reason["no_published_automation"].route == "order_shipped"
    failed = by_reason["run_failed"]
    assert failed.route == "dunning"
    assert failed.details is not None
    assert "no phone number" in failed.details["error"]
    assert failed.details["logs"], "the failed run's node logs are kept"
    assert failed.record is not None  # the original Kafka record, for redrive


def test_once_prints_a_summary_and_a_redrive_replays_with_the_same_key(
    tmp_path: Path, broker: BrokerHandle
) -> None:
    with running_simulator(_seed()) as sim:
        setup = Setup(tmp_path, broker, sim)
        setup.produce(broker)
        once = BridgeProcess(["run", "--config", str(setup.config_file), "--once"], ENV)
        assert once.wait(timeout=90) == 0, once.stderr[-3000:]
        summary = json.loads(once.stdout)
        _assert_fired_once_each(setup, sim)

        assert summary["events"]["consumed"] == len(MANIFEST)
        assert summary["events"]["routed"] == len(setup.deliveries)
        assert summary["fires"] == {
            "TRIGGERED": len(setup.accepted),
            "TRIGGER_EVENT_NOT_FOUND": 1,
            "NO_PUBLISHED_AUTOMATION": 1,
        }
        assert summary["runs"] == dict(setup.runs)
        assert summary["dead_letters"] == dict(sorted(setup.dead_letters.items()))

        # Redrive the failed run: fired again with its original key, Brew replays it.
        redrive = BridgeProcess(
            ["dlq", "redrive", "--config", str(setup.config_file), "--reason", "run_failed"],
            ENV,
        )
        assert redrive.wait(timeout=30) == 0, redrive.stderr
        again = BridgeProcess(
            ["run", "--config", str(setup.config_file), "--once", "--no-consume"], ENV
        )
        assert again.wait(timeout=60) == 0, again.stderr[-3000:]
        replay = json.loads(again.stdout)
        assert replay["fires"] == {"IDEMPOTENT_REPLAY": 1}
        dunning_keys = [
            k
            for k, v in fires_by_key(sim).items()
            if v[0]["path"].endswith(f"/{setup.route_trigger['dunning']}/fire")
        ]
        assert len(dunning_keys) == 1
        assert len(fires_by_key(sim)[dunning_keys[0]]) == 2  # the first fire and the redrive
