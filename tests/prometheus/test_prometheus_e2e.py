"""A real Prometheus scraping a real bridge: every alert expression in rules.yaml, and
every metric selector and aggregation in it, evaluated over Prometheus' HTTP API.

The bridge fires at the Brew simulator (two 429s first, a small fire budget so requests
wait for it) and follows the runs to their end, one of them failed. Then each selector
must return series carrying every label the rule uses on it, and each aggregation must
return series whose grouping labels are all set — so a rule naming a metric or a label
the code does not export fails here."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
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

from brew_bridge.testing.simulator import running_simulator
from conftest import RULES

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

SELECTOR = re.compile(r"\b(brew_bridge_[A-Za-z0-9_:]+)(\{[^}]*\})?")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\s+by\s*\(([^)]*)\)\s*\(")
UNCHECKED = re.compile(r"\b(without|on|ignoring|group_left|group_right)\s*\(|\)\s*by\s*\(")


def _alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _balanced(text: str, start: int) -> int:
    """The index just past the parenthesis closing the one at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def _aggregations(expr: str) -> list[tuple[str, list[str]]]:
    """Each ``op by (labels) (argument)`` in ``expr``: its text and its grouping labels."""
    found = []
    for m in AGGREGATION.finditer(expr):
        end = _balanced(expr, m.end() - 1)
        labels = [label.strip() for label in m.group(2).split(",") if label.strip()]
        found.append((expr[m.start() : end], labels))
    return found


def _selectors(expr: str) -> dict[str, set[str]]:
    """Each metric selector in ``expr`` and the labels the rule needs on its series: its
    matchers' and those of every aggregation enclosing it."""
    needed: dict[str, set[str]] = {}
    for m in SELECTOR.finditer(expr):
        needed.setdefault(m.group(0), set()).update(MATCHER.findall(m.group(2) or ""))
    for text, labels in _aggregations(expr):
        for m in SELECTOR.finditer(text):
            needed[m.group(0)].update(labels)
    return needed


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


async def _query(http: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    answer = await http.get("/api/v1/query", params={"query": expr})
    body = answer.json()
    assert answer.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_every_alert_expression_names_metrics_and_labels_the_bridge_exports(
    prometheus_bin: str, tmp_path: Path
) -> None:
    alerts = _alerts()
    for alert in alerts:
        assert not UNCHECKED.search(alert["expr"]), (
            f"{alert['alert']}: this test checks `op by (...) (...)` only; extend it"
        )

    with running_simulator(seed(TRIGGERS)) as sim:
        sim.put_faults({"fire": {"next": [{"fault": "rateLimit", "count": 2, "retryAfter": 1}]}})
        config = bridge_config(tmp_path, sim, limits={"fire": {"limit": 3, "window_seconds": 2}})
        queue(config, ITEMS)
        async with running_worker(config) as worker:
            with running_prometheus(prometheus_bin, tmp_path, worker.port) as url:
                async with httpx.AsyncClient(base_url=url, timeout=5) as http:

                    async def scraped_every_end() -> bool:
                        if not all_ended(config):
                            return False
                        try:
                            ended = await _query(http, "sum(brew_bridge_runs_terminal_total)")
                        except httpx.TransportError:
                            return False  # not listening yet
                        if not ended or float(ended[0]["value"][1]) != RUNS:
                            return False
                        # Two scrapes at least, or rate() and increase() have nothing.
                        samples = await _query(
                            http, "count_over_time(brew_bridge_runs_in_flight[5m])"
                        )
                        return bool(samples) and float(samples[0]["value"][1]) >= 2

                    await eventually(
                        scraped_every_end, within=60, what="Prometheus to scrape every run's end"
                    )
                    failed = await _query(http, 'brew_bridge_runs_terminal_total{status="failed"}')
                    assert [s["metric"]["route"] for s in failed] == ["receipt"]

                    problems: list[str] = []
                    for alert in alerts:
                        name, expr = alert["alert"], alert["expr"]
                        await _query(http, expr)  # valid PromQL, evaluated for real
                        for selector, labels in _selectors(expr).items():
                            series = await _query(http, selector)
                            if not series:
                                problems.append(f"{name}: {selector} returns no series")
                            for s in series:
                                missing = labels - s["metric"].keys()
                                if missing:
                                    problems.append(f"{name}: {selector} has no {sorted(missing)}")
                        for text, labels in _aggregations(expr):
                            series = await _query(http, text)
                            if not series:
                                problems.append(f"{name}: {text} returns no series")
                            for s in series:
                                unset = [label for label in labels if not s["metric"].get(label)]
                                if unset:
                                    problems.append(f"{name}: {text} leaves {unset} unset")
                    assert problems == [], "\n".join(problems)

                    # Prometheus evaluates every rule without an error.
                    async def rules_evaluated() -> bool:
                        groups = (await http.get("/api/v1/rules")).json()["data"]["groups"]
                        rules = [r for g in groups for r in g["rules"]]
                        assert [r for r in rules if r["health"] == "err"] == []
                        return len(rules) == len(alerts) and all(r["health"] == "ok" for r in rules)

                    await eventually(rules_evaluated, within=30, what="every rule evaluated")
