"""A real Prometheus scraping a real bridge: every alert expression in rules.yaml, and
every metric selector and aggregation in it, evaluated over Prometheus' HTTP API.

The bridge fires at the Brew simulator (two 429s first, a small fire budget so requests
wait for it) and follows the runs to their end, one of them failed (conftest's
``scraped_demo``, shared with the dashboard test). Then each selector
must return series carrying every label the rule uses on it, and each aggregation must
return series whose grouping labels are all set — so a rule naming a metric or a label
the code does not export fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from delivery_support import eventually

from conftest import RULES, query, scraped_demo

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


async def test_every_alert_expression_names_metrics_and_labels_the_bridge_exports(
    prometheus_bin: str, tmp_path: Path
) -> None:
    alerts = _alerts()
    for alert in alerts:
        assert not UNCHECKED.search(alert["expr"]), (
            f"{alert['alert']}: this test checks `op by (...) (...)` only; extend it"
        )

    async with scraped_demo(prometheus_bin, tmp_path) as http:
        problems: list[str] = []
        for alert in alerts:
            name, expr = alert["alert"], alert["expr"]
            await query(http, expr)  # valid PromQL, evaluated for real
            for selector, labels in _selectors(expr).items():
                series = await query(http, selector)
                if not series:
                    problems.append(f"{name}: {selector} returns no series")
                for s in series:
                    missing = labels - s["metric"].keys()
                    if missing:
                        problems.append(f"{name}: {selector} has no {sorted(missing)}")
            for text, labels in _aggregations(expr):
                series = await query(http, text)
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
