"""Writes brew-delivery-health.json, the Grafana dashboard of brew-bridge's delivery health.

    python deploy/grafana/build_dashboard.py          # rewrite the JSON beside this file
    python deploy/grafana/build_dashboard.py --check  # exit 1 if the JSON is out of date

Standard library only: the dashboard is plain JSON, and a few helpers here keep the
panels uniform without a dependency. Every metric is defined in
src/brew_bridge/observe/metrics.py; tests/prometheus/test_grafana_dashboard.py checks the
committed JSON is this script's output and runs every query against a real Prometheus
scraping a real bridge. `$target` and `$route` filter the metrics that carry those labels;
the outbox, runs-in-flight and consumer gauges are per bridge process (`instance`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("brew-delivery-health.json")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
TR = 'target=~"$target"'
RT = 'route=~"$route"'
RATE = "[$__rate_interval]"


def q(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def quantiles(metric: str) -> list[dict[str, Any]]:
    sel = f"{metric}_bucket{{{TR}, {RT}}}"
    return [
        q(
            f"histogram_quantile({p}, sum by (le, target, route) (rate({sel}{RATE})))",
            f"p{round(p * 100)} {{{{target}}}} / {{{{route}}}}",
            ref,
        )
        for p, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
    ]


def right_axis(ref: str, unit: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "custom.axisPlacement", "value": "right"},
            {"id": "unit", "value": unit},
        ],
    }


# (title, description, kind, unit, width, targets, overrides)
PANELS: list[tuple[str, str, str, str, int, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "Fires/min by result code vs fire budget left",
        "Fire attempts per minute (TRIGGERED, IDEMPOTENT_REPLAY or an error code), and on "
        "the right axis the requests left in the current fire-budget window as the target "
        "or the local limiter last said (the limit itself is not exported). Budget left "
        "at 0 while fires keep coming: delivery is paced by the budget.",
        "timeseries",
        "short",
        12,
        [
            q(
                f"sum by (target, code) (rate(brew_bridge_fires_total{{{TR}, {RT}}}{RATE})) * 60",
                "{{target}} {{code}}",
            ),
            q(
                f'min by (target) (brew_bridge_rate_budget_remaining{{{TR}, policy="fire"}})',
                "{{target}} fire budget left",
                "B",
            ),
        ],
        [right_axis("B", "short")],
    ),
    (
        "Fire budget saturation: average wait for the budget",
        "Seconds a fire request waited for the fire budget, on average. Above 1 s for "
        "long: the budget is saturated (alert BrewBridgeRateBudgetWaitHigh).",
        "timeseries",
        "s",
        12,
        [
            q(
                "sum by (target) (rate(brew_bridge_rate_budget_wait_seconds_sum"
                f'{{{TR}, policy="fire"}}{RATE}))'
                " / sum by (target) (rate(brew_bridge_rate_budget_wait_seconds_count"
                f'{{{TR}, policy="fire"}}{RATE}))',
                "{{target}}",
            )
        ],
        [],
    ),
    (
        "Fires/min per route",
        "Fire attempts per minute, every result code, by target and route.",
        "timeseries",
        "short",
        12,
        [
            q(
                f"sum by (target, route) (rate(brew_bridge_fires_total{{{TR}, {RT}}}{RATE})) * 60",
                "{{target}} / {{route}}",
            )
        ],
        [],
    ),
    (
        "Runs ended/min by terminal status",
        "Runs reaching an end per minute: completed, partially_completed, failed, canceled, "
        "timed_out.",
        "timeseries",
        "short",
        12,
        [
            q(
                "sum by (target, route, status) "
                f"(rate(brew_bridge_runs_terminal_total{{{TR}, {RT}}}{RATE})) * 60",
                "{{target}} / {{route}} {{status}}",
            )
        ],
        [],
    ),
    (
        "Fire accepted -> run end latency (p50, p90, p99)",
        "From a fire being accepted to its run reaching an end (brew_bridge_run_duration_seconds).",
        "timeseries",
        "s",
        12,
        quantiles("brew_bridge_run_duration_seconds"),
        [],
    ),
    (
        "Event -> fire accepted latency (p50, p90, p99)",
        "From an event entering the outbox to the target accepting its fire, budget waits "
        "and retries included (brew_bridge_event_to_fire_seconds).",
        "timeseries",
        "s",
        12,
        quantiles("brew_bridge_event_to_fire_seconds"),
        [],
    ),
    (
        "Outbox rows by state (per bridge)",
        "Outbox rows by state. The outbox has no target or route label: one per bridge process.",
        "timeseries",
        "short",
        8,
        [q("sum by (instance, state) (brew_bridge_outbox_rows)", "{{instance}} {{state}}")],
        [],
    ),
    (
        "Oldest pending age (per bridge)",
        "Age of the oldest row waiting to be fired (pending or retry_wait). Alert "
        "BrewBridgeOldestPendingTooOld above 15 min.",
        "timeseries",
        "s",
        8,
        [
            q(
                "max by (instance) (brew_bridge_outbox_oldest_pending_age_seconds)",
                "{{instance}}",
            )
        ],
        [],
    ),
    (
        "Consumer lag and pauses",
        "Records each stream has past the group's committed offset (summed over this "
        "member's partitions), read from the broker every kafka.lag_interval_seconds. "
        "The right axis is 1 while consumption is paused because the outbox is above its "
        "high-water mark: then lag grows until fires catch up (see the backlog panel).",
        "timeseries",
        "short",
        8,
        [
            q(
                "sum by (instance, stream) (brew_bridge_consumer_lag_records)",
                "{{instance}} {{stream}}",
            ),
            q("max by (instance) (brew_bridge_consumer_paused)", "{{instance}} paused", "B"),
        ],
        [right_axis("B", "short")],
    ),
    (
        "Dead letters/min by stage, route and reason",
        "Dead letters written per minute (ingest, fire, run). Inspect with "
        "`brew-bridge dlq list --reason REASON --route ROUTE`. No target label.",
        "timeseries",
        "short",
        12,
        [
            q(
                "sum by (stage, route, reason) "
                f"(rate(brew_bridge_dead_letters_total{{{RT}}}{RATE})) * 60",
                "{{route}} {{stage}} {{reason}}",
            )
        ],
        [],
    ),
    (
        "429s/min by target and endpoint",
        "Requests the target rate limited. Sustained: replicas share a key, or rate_limits "
        "are set above the key's real budget (alert BrewBridgeRateLimited).",
        "timeseries",
        "short",
        12,
        [
            q(
                "sum by (target, endpoint) (rate(brew_bridge_http_requests_total"
                f'{{{TR}, status="429"}}{RATE})) * 60',
                "{{target}} {{endpoint}}",
            )
        ],
        [],
    ),
    (
        "Circuit state per target",
        "Open: the target answered 401/403 and firing at it has stopped (events are kept). "
        "`curl -s http://BRIDGE:9400/readyz` says what to fix.",
        "stat",
        "none",
        12,
        [q(f"max by (target) (brew_bridge_circuit_open{{{TR}}})", "{{target}}")],
        [],
    ),
    (
        "Runs in flight (per bridge)",
        "Runs fired and not yet at an end, all targets.",
        "timeseries",
        "short",
        12,
        [q("max by (instance) (brew_bridge_runs_in_flight)", "{{instance}}")],
        [],
    ),
]

CIRCUIT_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "open", "color": "red", "index": 1},
        },
    }
]


def panel(pid: int, x: int, y: int, spec: tuple[Any, ...]) -> dict[str, Any]:
    title, description, kind, unit, width, targets, overrides = spec
    defaults: dict[str, Any] = {"unit": unit}
    options: dict[str, Any] = {"tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        defaults["mappings"] = CIRCUIT_MAPPINGS
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
        }
        options = {"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}}
    else:
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10}
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": width, "h": 8},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options,
        "targets": targets,
    }


def variable(name: str, label: str, expr: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": expr,
        "query": {"query": expr, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    panels = []
    x = y = 0
    for pid, spec in enumerate(PANELS, start=1):
        width = spec[4]
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(panel(pid, x, y, spec))
        x += width
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus scraping brew-bridge's /metrics",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "uid": "brew-delivery-health",
        "title": "brew-bridge: delivery health",
        "description": "Fires against the budget, runs, latency, outbox, dead letters, "
        "429s, circuit and consumer state, per target and route.",
        "tags": ["brew-bridge"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                variable("target", "Target", "label_values(brew_bridge_fires_total, target)"),
                variable(
                    "route",
                    "Route",
                    'label_values(brew_bridge_fires_total{target=~"$target"}, route)',
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT.name} is out of date: run python {Path(__file__).name}")
    else:
        OUT.write_text(text, encoding="utf-8")
