"""deploy/prometheus checked with the real promtool: the rule file is valid, every alert
fires and stays quiet where it should (rules_test.yaml), the PrometheusRule wraps the very
same groups, and the scrape config and ServiceMonitor point at the bridge's /metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from conftest import DEPLOY, RULES

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _load(RULES)["groups"] for rule in group["rules"]]


def _promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules_passes(promtool: str) -> None:
    done = _promtool(promtool, "check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


def test_promtool_check_config_passes_on_the_scrape_example(promtool: str) -> None:
    # It also loads and checks the rule file the example names.
    done = _promtool(promtool, "check", "config", DEPLOY / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_every_alert_fires_and_stays_quiet_where_it_should(promtool: str, tmp_path: Path) -> None:
    """``promtool test rules`` on rules_test.yaml, against rules.yaml without its
    annotations (promtool would compare their rendered text verbatim)."""
    rules = _load(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    stripped = tmp_path / "rules.yaml"
    stripped.write_text(yaml.safe_dump(rules), encoding="utf-8")
    tests = _load(HERE / "rules_test.yaml")
    tests["rule_files"] = [str(stripped)]
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(tests), encoding="utf-8")

    done = _promtool(promtool, "test", "rules", test_file)
    assert done.returncode == 0, done.stdout + done.stderr

    # Every alert has a case where it fires and one where it stays quiet.
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert fired == names
    assert quiet == names


def test_every_alert_says_what_is_wrong_and_what_to_run_first() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "BrewBridgeDeadLettersRising",
        "BrewBridgeOldestPendingTooOld",
        "BrewBridgeRunFailureRatio",
        "BrewBridgeCircuitOpen",
        "BrewBridgeConsumerPaused",
        "BrewBridgeRateLimited",
        "BrewBridgeRateBudgetExhausted",
        "BrewBridgePollerBehind",
        "BrewBridgeRunReadsStalled",
    }
    for alert in alerts:
        notes = alert["annotations"]
        assert set(notes) == {"summary", "description", "runbook"}, alert["alert"]
        assert "`brew-bridge " in notes["runbook"], alert["alert"]
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        assert alert["alert"].startswith("BrewBridge"), alert["alert"]


def test_the_prometheusrule_wraps_exactly_the_rule_files_groups() -> None:
    wrapped = _load(DEPLOY / "prometheusrule.yaml")
    assert wrapped["apiVersion"] == "monitoring.coreos.com/v1"
    assert wrapped["kind"] == "PrometheusRule"
    assert wrapped["metadata"]["name"] == "brew-bridge"
    assert wrapped["spec"] == {"groups": _load(RULES)["groups"]}, (
        "prometheusrule.yaml differs from rules.yaml: regenerate it (see its header)"
    )


def test_the_scrape_config_and_servicemonitor_point_at_the_bridges_metrics() -> None:
    scrape = _load(DEPLOY / "prometheus.yml")
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert [t for c in job["static_configs"] for t in c["targets"]] == ["localhost:9400"]
    assert scrape["rule_files"] == ["rules.yaml"]

    monitor = _load(DEPLOY / "servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    # The port named in deploy/kubernetes/base/service.yaml, selected by its labels.
    service = _load(DEPLOY.parent / "kubernetes" / "base" / "service.yaml")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
