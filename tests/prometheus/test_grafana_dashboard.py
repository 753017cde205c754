"""deploy/grafana/brew-delivery-health.json: the committed JSON is the generator's output,
it has the shape Grafana imports, and every panel query, evaluated by a real Prometheus
scraping a real bridge after conftest's ``scraped_demo`` (fires, two 429s, a failed run),
returns series carrying the labels the query uses — so a panel naming a metric or a label
the code does not export fails here."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from delivery_support import eventually
from test_prometheus_e2e import UNCHECKED, _aggregations, _selectors

from conftest import ROOT, query, scraped_demo

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "brew-delivery-health.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What Grafana puts in a query's place: "All" is `.*` (the variables' allValue).
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__range": "5m", "$target": ".*", "$route": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((\w+)(\{[^}]*\})?,\s*(\w+)\)$")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panel_queries() -> list[tuple[str, str]]:
    """(panel title and refId, expression with Grafana's variables substituted)."""
    found = []
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in SUBSTITUTIONS.items():
                expr = expr.replace(variable, value)
            found.append((f"{panel['title']} [{target['refId']}]", expr))
    return found


def test_the_committed_dashboard_is_the_generators_output() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == _generator().render(), (
        "brew-delivery-health.json is out of date: run python deploy/grafana/build_dashboard.py"
    )


def test_the_dashboard_has_the_shape_grafana_imports() -> None:
    board = _dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"]
    assert board["title"]
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"

    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables.keys() == {"DS_PROMETHEUS", "target", "route"}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("target", "route"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["datasource"] == DATASOURCE
        assert var["includeAll"]
        assert var["allValue"] == ".*"
        match = LABEL_VALUES.match(var["query"]["query"])
        assert match, var["query"]
        assert match.group(3) == name, var["query"]
        assert var["definition"] == var["query"]["query"]

    panels = board["panels"]
    assert len(panels) >= 10
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    titles = [p.get("title") for p in panels]
    assert all(titles), titles
    assert len(set(titles)) == len(titles), titles
    problems = []
    for p in panels:
        where = p["title"]
        if p.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource {p.get('datasource')} is not $DS_PROMETHEUS")
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{where}: gridPos {grid}")
        elif grid["x"] + grid["w"] > 24 or grid["w"] <= 0 or grid["h"] <= 0:
            problems.append(f"{where}: gridPos {grid} leaves the 24-column grid")
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: refIds {refs}")
        for t in p.get("targets", []):
            if not t.get("expr", "").strip():
                problems.append(f"{where}: a target without expr")
            if t.get("datasource") != DATASOURCE:
                problems.append(f"{where}: a target's datasource is not $DS_PROMETHEUS")
    # No two panels overlap on the grid.
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            continue  # reported above
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{p['title']} overlaps {cells[x, y]}")
                cells[x, y] = p["title"]
    assert problems == [], "\n".join(sorted(set(problems)))

    for where, expr in _panel_queries():
        assert "$" not in expr, f"{where}: a variable this test does not substitute: {expr}"
        assert not UNCHECKED.search(expr), f"{where}: checks `op by (...) (...)` only; extend it"


async def _problems(http: httpx.AsyncClient) -> list[str]:
    """What is wrong with each panel query, evaluated now."""
    problems: list[str] = []
    for where, expr in _panel_queries():
        if not await query(http, expr):  # valid PromQL, evaluated for real
            problems.append(f"{where}: {expr} returns no series")
        for selector, labels in _selectors(expr).items():
            series = await query(http, selector)
            if not series:
                problems.append(f"{where}: {selector} returns no series")
            for s in series:
                missing = labels - s["metric"].keys()
                if missing:
                    problems.append(f"{where}: {selector} has no {sorted(missing)}")
        for text, labels in _aggregations(expr):
            for s in await query(http, text):
                unset = [label for label in labels if not s["metric"].get(label)]
                if unset:
                    problems.append(f"{where}: {text} leaves {unset} unset")
    return sorted(set(problems))


async def test_every_panel_query_returns_series_from_a_real_bridge(
    prometheus_bin: str, tmp_path: Path
) -> None:
    variables = [v for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    async with scraped_demo(prometheus_bin, tmp_path) as http:
        # A counter that moved just before the last scrape has one sample: no rate() yet.
        problems: list[str] = []

        async def every_panel_filled() -> bool:
            problems[:] = await _problems(http)
            return not problems

        try:
            await eventually(every_panel_filled, within=15, what="every panel query to fill")
        except AssertionError:
            raise AssertionError("\n".join(problems)) from None

        # The variables' label_values() offer the demo's targets and routes.
        for var in variables:
            match = LABEL_VALUES.match(var["query"]["query"])
            assert match, var["query"]
            metric, matchers, label = match.groups()
            selector = metric + (matchers or "").replace("$target", ".*")
            answer = await http.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
            assert answer.status_code == 200, answer.text
            values = answer.json()["data"]
            assert values, f"variable {var['name']}: {var['query']['query']} offers nothing"
            assert var["name"] != "route" or set(values) == {"welcome", "receipt"}, values
