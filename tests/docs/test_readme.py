"""The README's reference parts list everything they claim to: every config key, every
metric, every alert; and its first screen stays the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from config_keys import config_keys

from brew_bridge.observe.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The README's text under ``heading`` up to the next heading of its level or above."""
    level = heading.split(" ")[0]
    start = README.index(f"\n{heading}\n")
    stop = re.compile(rf"\n#{{1,{len(level)}}} ")
    end = stop.search(README, start + len(heading) + 2)
    return README[start : end.start() if end else len(README)]


def test_every_config_key_is_in_the_reference_under_its_section() -> None:
    reference = _section("### Every key")
    rows = {
        cells[0].strip("` "): cells[1]
        for line in reference.splitlines()
        if line.startswith("| `") and len(cells := line.strip("|").split("|")) >= 2
    }
    missing = [
        f"{section or '(top level)'}: {key}"
        for section, key in config_keys()
        if f"`{key}`" not in rows.get(section or "(top level)", "")
    ]
    assert missing == [], "run `python tests/docs/config_keys.py` and update the README"


def test_every_metric_is_in_the_metrics_table() -> None:
    table = _section("## Metrics")
    names = [family.name for family in Metrics().registry.collect()]
    assert len(names) > 20
    missing = [name for name in names if f"`{name}" not in table]
    assert missing == []


def test_every_alert_is_in_the_alerts_table_with_its_first_step() -> None:
    table = _section("### Alerts")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert alerts
    for alert in alerts:
        row = next((line for line in table.splitlines() if f"| `{alert}` |" in line), None)
        assert row is not None, f"{alert} is not in the README's alerts table"
        assert "Run `" in row or "run `" in row, f"{alert}: its row says nothing to run"


def test_the_first_screen_is_the_two_commands() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("brew-bridge dev")
    assert commands[1] == ".venv/bin/python -m pytest"
