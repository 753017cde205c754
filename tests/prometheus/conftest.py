"""Fixtures for the Prometheus tests: the real ``promtool`` and ``prometheus`` binaries.

They come from Debian's ``prometheus`` package, which ``.ci/run`` installs; where they
are missing the tests skip, saying how to get them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from brew_bridge.testing.kafka import running_broker
from brew_bridge.testing.simulator import running_simulator

# The simulator, outbox and worker helpers are shared with the delivery tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "delivery"))

from delivery_support import (
    all_ended,
    automation,
    bridge_config,
    eventually,
    queue,
    running_worker,
    seed,
    trigger,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yaml"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not found: install Debian's prometheus package "
            "(apt-get install prometheus); .ci/run installs it, so CI never skips this"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")


# The demo both end-to-end tests query: a real bridge firing at the Brew simulator (two
# 429s first, a small fire budget so requests wait for it) and following the runs to their
# end, one of them failed, scraped every second by a real Prometheus.
TRIGGERS = {
    "tri_welcome": trigger(automation("auto_welcome", ms=200)),
    # One fire, two runs: the CRM one fails.
    "tri_receipt": trigger(
        automation("auto_receipt", ms=200),
        automation("auto_crm", outcome="failed", ms=300, error="CRM refused the contact"),
    ),
}
ITEMS = [
    *[
        ("welcome", "tri_welcome", f"welcome:u{i}", {"email": f"u{i}@example.com"})
        for i in range(5)
    ],
    ("receipt", "tri_receipt", "receipt:r0", {"email": "r0@example.com"}),
]
RUNS = 7
# A topic the bridge consumes beside the queued deliveries, so the consumer's own series
# (lag, pause) are scraped too: its events match no route and are only counted (drop).
LAG_TOPIC = "prometheus-demo"
LAG_ROUTE = {
    "name": "demo_topic",
    "topics": [LAG_TOPIC],
    "match": {"type": "never.sent"},
    "trigger": "tri_welcome",
    "payload": {"email": {"path": "event.email"}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_prometheus(binary: str, tmp_path: Path, bridge_port: int) -> Iterator[str]:
    """A real prometheus scraping the bridge every second and evaluating rules.yaml."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "brew-bridge",
                        "static_configs": [{"targets": [f"127.0.0.1:{bridge_port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode in (0, -15), (tmp_path / "prometheus.log").read_text()


async def query(http: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """``expr`` evaluated now over Prometheus' HTTP API; fails on any error."""
    answer = await http.get("/api/v1/query", params={"query": expr})
    body = answer.json()
    assert answer.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@asynccontextmanager
async def scraped_demo(prometheus_bin: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The demo run to its end: a client of the Prometheus that has scraped every run's
    end (twice at least, so rate() and increase() have something); the bridge and
    Prometheus keep running until the block exits."""
    with running_simulator(seed(TRIGGERS)) as sim, running_broker() as broker:
        sim.put_faults({"fire": {"next": [{"fault": "rateLimit", "count": 2, "retryAfter": 1}]}})
        broker.create_topic(LAG_TOPIC, partitions=2)
        broker.produce(LAG_TOPIC, [b'{"type": "demo", "id": "%d"}' % i for i in range(20)])
        config = bridge_config(
            tmp_path,
            sim,
            limits={"fire": {"limit": 3, "window_seconds": 2}},
            kafka={
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": "prometheus-demo",
                "session_timeout_ms": 2000,
                "heartbeat_interval_ms": 500,
                "lag_interval_seconds": 0.5,
            },
            routes=[LAG_ROUTE],
            triggers={
                "tri_welcome": {
                    "payload_schema": {
                        "type": "object",
                        "fields": [{"key": "email", "type": "string", "required": True}],
                    }
                }
            },
            no_route="drop",
        )
        queue(config, ITEMS)
        async with running_worker(config, consume=True) as worker:
            with running_prometheus(prometheus_bin, tmp_path, worker.port) as url:
                async with httpx.AsyncClient(base_url=url, timeout=5) as http:

                    async def scraped_every_end() -> bool:
                        if not all_ended(config):
                            return False
                        try:
                            ended = await query(http, "sum(brew_bridge_runs_terminal_total)")
                        except httpx.TransportError:
                            return False  # not listening yet
                        if not ended or float(ended[0]["value"][1]) != RUNS:
                            return False
                        samples = await query(
                            http, "count_over_time(brew_bridge_runs_in_flight[5m])"
                        )
                        lag = await query(http, "brew_bridge_consumer_lag_records")
                        return bool(samples and lag) and float(samples[0]["value"][1]) >= 2

                    await eventually(
                        scraped_every_end, within=60, what="Prometheus to scrape every run's end"
                    )
                    failed = await query(http, 'brew_bridge_runs_terminal_total{status="failed"}')
                    assert [s["metric"]["route"] for s in failed] == ["receipt"]
                    yield http
