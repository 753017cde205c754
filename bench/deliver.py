"""Delivery benchmark: the rate budget, poll efficiency and fire throughput, against the simulator.

    python bench/deliver.py [--window 6] [--windows 10] [--poll-windows 6]
                            [--poll-interval 2] [--fires 3000] [--concurrency 16] [--json]
                            [--only budget|poll|throughput]

The simulator runs in its own process (``python -m brew_bridge.cli.sim``); the bridge
(outbox -> dispatcher -> simulator, poller beside it) runs in a child process per
scenario, so its peak RSS is its own. Three scenarios:

1. **Budget use.** A backlog fired under a compressed fire limit (60 per ``--window``
   seconds, Brew's 60/min shrunk) for ``--windows`` windows. From the simulator's
   request log: fires per window (target >= 98 % of 60), the most fires in any sliding
   window (<= 60), and 429s (0).
2. **Poll efficiency.** At the full fire rate, runs of 1, 2 and 3 s on three triggers:
   runs resolved per run-read request (target >= 50; polling each run gives 1), the most
   reads in any sliding window (<= the 100-per-window read limit), and the delay from a
   run's end at Brew to the bridge recording it (p50 / p95).
3. **Throughput with limits lifted.** Fires/s of the whole pipeline draining a backlog,
   next to a bare ``httpx`` loop posting the same requests to a fresh simulator with
   the same concurrency (target ratio >= 0.85), and beside that loop again on the
   bridge's one-connection transports (the pool's share of the difference); then
   event -> fire latency (p50 / p99) with events arriving at half the measured rate;
   and the bridge's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from brew_bridge.testing.windows import most_in_window

BRIDGE_KEY = "brew_bench_bridge"
PROBE_KEY = "brew_bench_probe"  # same brand, own rate windows: reads results afterwards
SCHEMA = {"type": "object", "fields": [{"key": "email", "type": "string", "required": True}]}
LIFTED = {"limit": 1_000_000_000, "windowSeconds": 1}
_URL = re.compile(r"at (http://\S+/api)")
_OFFSETS = itertools.count()
SCENARIOS = ("budget", "poll", "throughput")
# Runs resolved per run read at the poll scenario's full fire rate and a 2 s interval.
RUNS_PER_READ_TARGET = 50
# Pipeline fires/s over the bare httpx loop's, limits lifted.
FIRE_RATIO_TARGET = 0.85


# -- the simulator ------------------------------------------------------------------------


def _seed(triggers: Mapping[str, float], limits: Mapping[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "requestLogSize": 200_000,
            "allowAnyBrewKey": False,
            "keys": {
                BRIDGE_KEY: {"brandId": "brand_bench"},
                PROBE_KEY: {"brandId": "brand_bench"},
            },
            "limits": limits,
            "triggers": {
                tid: {
                    "title": tid,
                    "payloadSchema": SCHEMA,
                    "automations": [{"automationId": f"auto_{tid}", "durationMs": ms}],
                }
                for tid, ms in triggers.items()
            },
        }
    )


class Simulator:
    """``brew-bridge sim`` in its own process, on a free port."""

    def __init__(self, seed: str, tmp: Path) -> None:
        seed_file = tmp / f"seed-{time.monotonic_ns()}.yaml"
        seed_file.write_text(seed)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "brew_bridge.cli.sim", "--port", "0", "--seed", str(seed_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _URL.search(line)
        if match is None:
            self.proc.kill()
            raise SystemExit(f"the simulator did not start: {line!r}")
        self.base_url = match[1]
        self.root = self.base_url.removesuffix("/api")

    def requests(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(f"{self.root}/_sim/requests", timeout=300).json()[
            "data"
        ]
        return data

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _child(scenario: str, base_url: str, tmp: Path, **params: Any) -> dict[str, Any]:
    """Run one scenario's bridge side in a fresh process; its last stdout line is JSON."""
    errors = tmp.parent / f"{scenario}.stderr"
    with errors.open("w") as stderr:
        done = subprocess.run(
            [
                *(sys.executable, __file__, "--child", scenario, "--base-url", base_url),
                *("--dir", str(tmp), "--params", json.dumps(params)),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{scenario} failed:\n{errors.read_text()[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- measurements -------------------------------------------------------------------------


def _fires(requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and r["path"].endswith("/fire")]


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def budget(tmp: Path, window: float, windows: int) -> dict[str, Any]:
    limits = {
        "automation.runs.write": {"limit": 60, "windowSeconds": window},
        "automation.runs.read": {"limit": 100, "windowSeconds": window},
    }
    sim = Simulator(_seed({"tri_a": 500}, limits), tmp)
    try:
        fires = 60 * (windows + 1)  # one more than measured: the last window is partial
        child = _child("budget", sim.base_url, tmp / "budget", window=window, fires=fires)
        log = _fires(sim.requests())
    finally:
        sim.close()
    accepted = sorted(r["at"] for r in log if r["status"] == 200)
    t0 = accepted[0]
    per_window = [
        sum(1 for t in accepted if t0 + k * window <= t < t0 + (k + 1) * window)
        for k in range(windows)
    ]
    return {
        "window_seconds": window,
        "windows": windows,
        "fires_per_window": per_window,
        "min_share": min(per_window) / 60,
        "max_sliding": most_in_window(accepted, window),
        "fire_429s": sum(1 for r in log if r["status"] == 429),
        "bridge": child,
    }


def polling(tmp: Path, window: float, windows: int, interval: float) -> dict[str, Any]:
    limits = {
        "automation.runs.write": {"limit": 60, "windowSeconds": window},
        "automation.runs.read": {"limit": 100, "windowSeconds": window},
    }
    triggers = {"tri_1s": 1000, "tri_2s": 2000, "tri_3s": 3000}
    sim = Simulator(_seed(triggers, limits), tmp)
    try:
        child = _child(
            "poll",
            sim.base_url,
            tmp / "poll",
            window=window,
            fires=60 * windows,
            triggers=list(triggers),
            interval=interval,
        )
        requests = [r for r in sim.requests() if r["at"] <= child["done_at"]]
    finally:
        sim.close()
    reads = [r["at"] for r in requests if r["method"] == "GET" and "/runs" in r["path"]]
    child["max_reads_in_window"] = most_in_window(reads, window)
    child["read_429s"] = sum(
        1 for r in requests if r["method"] == "GET" and "/runs" in r["path"] and r["status"] == 429
    )
    child["window_seconds"] = window
    return child


def throughput(tmp: Path, fires: int, concurrency: int, rounds: int = 2) -> dict[str, Any]:
    """Pipeline, bare loop and bare loop on one-connection transports, alternating, each
    on a fresh simulator; best of ``rounds`` (the machine is shared: the best run is the
    one least disturbed)."""
    limits = {"automation.runs.write": LIFTED, "automation.runs.read": LIFTED}
    seed = _seed({"tri_fast": 1000}, limits)
    # bare: one httpx client as its docs show it; bare_shards: the same loop on the
    # bridge's pool of one-connection transports (targets/connections.py).
    children = {
        "pipeline": ("pipeline", {}),
        "bare": ("bare", {}),
        "bare_shards": ("bare", {"shards": True}),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in children}
    for n in range(rounds):
        for name, (scenario, extra) in children.items():
            sim = Simulator(seed, tmp)
            try:
                runs[name].append(
                    _child(
                        scenario,
                        sim.base_url,
                        tmp / f"{name}-{n}",
                        fires=fires,
                        concurrency=concurrency,
                        **extra,
                    )
                )
            finally:
                sim.close()
    best = {k: max(v, key=lambda r: r["fires_per_second"]) for k, v in runs.items()}
    best["pipeline"]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs["pipeline"])
    return {
        **best,
        "rounds": {k: [round(r["fires_per_second"]) for r in v] for k, v in runs.items()},
    }


# -- the bridge side (child processes) ------------------------------------------------------


def _config(base_url: str, tmp: Path, **sections: Any) -> Any:
    from pydantic import SecretStr

    from brew_bridge.config import (
        BrewConfig,
        BridgeConfig,
        DispatcherConfig,
        OutboxConfig,
        PollerConfig,
        RateLimitsConfig,
        ServerConfig,
    )

    tmp.mkdir(parents=True, exist_ok=True)
    limits = RateLimitsConfig(**sections.get("limits", {}))
    # A request may not outlive a rate window (the config refuses it): compressed
    # windows get a timeout that fits.
    shortest = min(
        limits.fire.window_seconds,
        limits.run_read.window_seconds,
        limits.trigger_read.window_seconds,
    )
    brew = {"timeout_seconds": min(30.0, shortest), **sections.get("brew", {})}
    return BridgeConfig(
        outbox=OutboxConfig(path=str(tmp / "outbox.db")),  # synchronous=FULL, as shipped
        brew=BrewConfig(
            base_url=base_url,
            api_key=SecretStr(BRIDGE_KEY),
            rate_limits=limits,
            **brew,
        ),
        dispatcher=DispatcherConfig(**sections.get("dispatcher", {})),
        poller=PollerConfig(**sections.get("poller", {})),
        server=ServerConfig(host="127.0.0.1", port=0),
    )


def write_run_config(
    path: Path, outbox: Path, trigger: str, brew: Mapping[str, Any], **sections: Any
) -> None:
    """A YAML config for ``brew-bridge run --no-consume`` (a child process): ``brew`` and
    ``sections`` as given, the outbox at ``outbox``, one route firing ``trigger``."""
    doc = {
        "outbox": {"path": str(outbox), "synchronous": "FULL"},
        "brew": dict(brew),
        **sections,
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "INFO", "format": "json"},
        "triggers": {trigger: {"payload_schema": SCHEMA}},
        "routes": [
            {
                "name": "bench",
                "topics": ["bench"],  # never read: the bridge runs with --no-consume
                "trigger": trigger,
                "payload": {"email": "event.email"},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _queue(outbox: Any, items: Sequence[tuple[str, str]]) -> None:
    """(trigger, key) deliveries stored in an open outbox as ingest stores them."""
    from brew_bridge.events import NewDelivery, Routed, SourceRecord

    routed = [
        Routed(
            record=SourceRecord("kafka", "bench", f"0:{next(_OFFSETS)}", None, b"{}"),
            deliveries=(
                NewDelivery("bench", "brew", trigger, key, {"email": f"{key}@example.com"}, key),
            ),
        )
        for trigger, key in items
    ]
    outbox.store_batch(routed, time.time())


def _queued(config: Any, items: Sequence[tuple[str, str]]) -> None:
    from brew_bridge.store import Outbox

    with Outbox.open(config.outbox.path) as outbox:
        _queue(outbox, items)


def _cpu_seconds() -> float:
    """CPU time of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _table(config: Any, name: str) -> list[dict[str, Any]]:
    import sqlite_utils

    db = sqlite_utils.Database(config.outbox.path)
    try:
        return list(db[name].rows)
    finally:
        db.close()


async def _run_until(
    config: Any, done: Callable[[Any], bool], limit: float, feeder: Any = None
) -> Any:
    """Run a worker (no Kafka) until ``done(outbox)``; returns (worker, started_at).

    Checked every 0.1 s with indexed counts: the measurement must not load the bridge.
    """
    from brew_bridge.store import Outbox
    from brew_bridge.worker import Worker

    worker = Worker(config, consume=False, env={})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await worker.started.wait()
    started = time.time()
    feed = asyncio.create_task(feeder(worker)) if feeder is not None else None
    outbox = Outbox.open(config.outbox.path)
    try:
        deadline = time.monotonic() + limit
        while (feed is not None and not feed.done()) or not done(outbox):
            if time.monotonic() > deadline or task.done():
                raise SystemExit("the scenario did not finish in time")
            await asyncio.sleep(0.1)
    finally:
        outbox.close()
        stop.set()
        await task
    return worker, started


def _drained(outbox: Any) -> bool:
    return bool(outbox.backlog() == 0)


def _all_ended(outbox: Any) -> bool:
    return _drained(outbox) and not outbox.live_runs(limit=1)


def child_budget(base_url: str, tmp: Path, window: float, fires: int) -> dict[str, Any]:
    from brew_bridge.config import RateLimit

    config = _config(
        base_url,
        tmp,
        limits={
            "fire": RateLimit(limit=60, window_seconds=window),
            "run_read": RateLimit(limit=100, window_seconds=window),
        },
        poller={"interval_seconds": window / 2},
    )
    _queued(config, [("tri_a", f"b{i}") for i in range(fires)])
    limit = (fires / 60 + 3) * window
    worker, _ = asyncio.run(_run_until(config, _drained, limit))
    return {"fired": fires, "summary": worker.summary.to_json()}


def child_poll(
    base_url: str, tmp: Path, window: float, fires: int, triggers: list[str], interval: float
) -> dict[str, Any]:
    from brew_bridge.config import RateLimit

    config = _config(
        base_url,
        tmp,
        limits={
            "fire": RateLimit(limit=60, window_seconds=window),
            "run_read": RateLimit(limit=100, window_seconds=window),
        },
        poller={"interval_seconds": interval},
    )
    _queued(config, [(triggers[i % len(triggers)], f"p{i}") for i in range(fires)])
    limit = (fires / 60 + 4) * window + 30
    worker, _ = asyncio.run(_run_until(config, _all_ended, limit))
    done_at = time.time()
    recorded = {r["run_id"]: r["finished_at"] for r in _table(config, "runs")}
    ended = _ended_at_brew(base_url)
    delays = [recorded[rid] - ended[rid] for rid in recorded if rid in ended]
    summary = worker.summary.to_json()
    reads = {
        mode: int(
            worker.metrics.registry.get_sample_value(
                "brew_bridge_run_reads_total", {"target": "brew", "mode": mode}
            )
            or 0
        )
        for mode in ("list", "detail", "logs")
    }
    runs = sum(summary["runs"].values())
    return {
        "runs": runs,
        "reads": reads,
        "runs_per_read": runs / max(1, sum(reads.values())),
        "delay_p50": statistics.median(delays),
        "delay_p95": _pct(delays, 0.95),
        "delay_max": max(delays),
        "interval_seconds": interval,
        "done_at": done_at,
    }


def _ended_at_brew(base_url: str) -> dict[str, float]:
    """Each run's end as Brew reports it (read with the probe key, after the fact)."""
    ended: dict[str, float] = {}
    cursor: str | None = None
    with httpx.Client(base_url=base_url, timeout=30) as http:
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = http.get(
                "/v1/automations/runs",
                params=params,
                headers={"Authorization": f"Bearer {PROBE_KEY}"},
            ).json()
            for row in page["data"]:
                if row.get("completedAt"):
                    ended[row["automationRunId"]] = _iso(row["completedAt"])
            cursor = page["pagination"]["cursor"]
            if not page["pagination"]["hasMore"] or cursor is None:
                return ended


def child_pipeline(base_url: str, tmp: Path, fires: int, concurrency: int) -> dict[str, Any]:
    from brew_bridge.config import RateLimit

    lifted = RateLimit(limit=1_000_000_000, window_seconds=1)
    config = _config(
        base_url,
        tmp,
        limits={"fire": lifted, "run_read": lifted},
        dispatcher={"concurrency": concurrency},
        brew={"max_connections": concurrency},
        # The measured path is outbox -> dispatcher -> Brew; the poller's list reads would
        # load the same simulator process the bare loop has to itself.
        poller={"interval_seconds": 60.0},
    )
    _queued(config, [("tri_fast", f"t{i}") for i in range(fires)])
    paced: dict[str, float] = {}

    async def both() -> Any:
        # 1. Drain the backlog as fast as the pipeline goes.
        cpu = _cpu_seconds()
        _, started = await _run_until(config, _drained, 300)
        paced["cpu_ms_per_fire"] = (_cpu_seconds() - cpu) / fires * 1000
        fired_at = [d["fired_at"] for d in _table(config, "deliveries")]
        rate = fires / (max(fired_at) - started)
        paced["drain_rate"] = rate
        # 2. Events arriving at half that rate: how long from the outbox to Brew's yes.
        n_paced = max(50, int(rate * 0.5 * 5))

        async def feeder(worker: Any) -> None:
            from brew_bridge.store import Outbox

            step = 1 / (rate * 0.5)
            with Outbox.open(config.outbox.path) as outbox:
                for i in range(n_paced):
                    _queue(outbox, [("tri_fast", f"paced{i}")])
                    worker.wake()
                    await asyncio.sleep(step)

        await _run_until(config, _drained, 300, feeder=feeder)
        return n_paced

    n_paced = asyncio.run(both())
    rows = [d for d in _table(config, "deliveries") if d["idempotency_key"].startswith("paced")]
    latency = [d["fired_at"] - d["created_at"] for d in rows]
    return {
        "fires": fires,
        "fires_per_second": paced["drain_rate"],
        "cpu_ms_per_fire": paced["cpu_ms_per_fire"],
        "paced_events": n_paced,
        "paced_rate": paced["drain_rate"] * 0.5,
        "latency_p50": statistics.median(latency),
        "latency_p99": _pct(latency, 0.99),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_bare(base_url: str, fires: int, concurrency: int, shards: bool = False) -> dict[str, Any]:
    """The floor: httpx posting the same fires, ``concurrency`` at a time, nothing else;
    with ``shards``, over the bridge's one-connection transports instead of httpx's pool."""
    from brew_bridge.targets.connections import ConnectionShards

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        # httpx's pool of ``limits``, or (a transport given: limits unused) the bridge's.
        pool = ConnectionShards.for_url(base_url, concurrency) if shards else None
        counter = iter(range(fires))
        async with httpx.AsyncClient(
            base_url=base_url, limits=limits, transport=pool, timeout=30
        ) as http:

            async def loop() -> None:
                for i in counter:
                    response = await http.post(
                        "/v1/automations/triggers/tri_fast/fire",
                        json={"payload": {"email": f"bare{i}@example.com"}},
                        headers={
                            "Authorization": f"Bearer {BRIDGE_KEY}",
                            "Idempotency-Key": f"bare{i}",
                        },
                    )
                    response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return fires / (time.perf_counter() - started)

    cpu = _cpu_seconds()
    rate = asyncio.run(run())
    return {
        "fires": fires,
        "fires_per_second": rate,
        "cpu_ms_per_fire": (_cpu_seconds() - cpu) / fires * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# -- report -----------------------------------------------------------------------------------


Row = tuple[str, str, str, str, bool | None]


def _budget_rows(b: dict[str, Any]) -> list[Row]:
    window = b["window_seconds"]
    return [
        (
            f"1. fires per window (min of {b['windows']})",
            f"{min(b['fires_per_window'])} / 60",
            f"{b['min_share']:.1%}",
            ">= 98 %",
            b["min_share"] >= 0.98,
        ),
        (
            f"   most fires in any {window:g} s",
            str(b["max_sliding"]),
            "",
            "<= 60",
            b["max_sliding"] <= 60,
        ),
        ("   429 answers to fires", str(b["fire_429s"]), "", "0", b["fire_429s"] == 0),
    ]


def _poll_rows(p: dict[str, Any]) -> list[Row]:
    return [
        (
            "2. runs resolved per run read",
            f"{p['runs']} / {sum(p['reads'].values())}",
            f"{p['runs_per_read']:.1f}",
            f">= {RUNS_PER_READ_TARGET}",
            p["runs_per_read"] >= RUNS_PER_READ_TARGET,
        ),
        (
            f"   most run reads in any {p['window_seconds']:g} s",
            str(p["max_reads_in_window"]),
            "",
            "<= 100",
            p["max_reads_in_window"] <= 100 and p["read_429s"] == 0,
        ),
        (
            "   run end -> recorded p50 / p95",
            f"{p['delay_p50']:.2f} / {p['delay_p95']:.2f} s",
            "",
            f"poll every {p['interval_seconds']:g} s",
            None,
        ),
    ]


def _throughput_rows(t: dict[str, Any]) -> list[Row]:
    pipeline = t["pipeline"]["fires_per_second"]
    ratio = pipeline / t["bare"]["fires_per_second"]
    t["ratio"] = ratio
    return [
        (
            "3. fires/s pipeline vs bare httpx",
            f"{pipeline:.0f} / {t['bare']['fires_per_second']:.0f}",
            f"{ratio:.2f}",
            f">= {FIRE_RATIO_TARGET}",
            ratio >= FIRE_RATIO_TARGET,
        ),
        (
            "   vs bare httpx on one-connection pools",
            f"{pipeline:.0f} / {t['bare_shards']['fires_per_second']:.0f}",
            f"{pipeline / t['bare_shards']['fires_per_second']:.2f}",
            "",
            None,
        ),
        (
            "   CPU per fire: pipeline / bare / one-connection",
            " / ".join(
                f"{t[k]['cpu_ms_per_fire']:.2f}" for k in ("pipeline", "bare", "bare_shards")
            )
            + " ms",
            "",
            "",
            None,
        ),
        (
            "   event -> fire p50 / p99",
            f"{t['pipeline']['latency_p50'] * 1000:.0f} / {t['pipeline']['latency_p99'] * 1000:.0f}"
            " ms",
            "",
            f"at {t['pipeline']['paced_rate']:.0f} events/s",
            None,
        ),
        ("   peak RSS (bridge process)", f"{t['pipeline']['peak_rss_mb']:.0f} MB", "", "", None),
    ]


def _report(results: dict[str, Any]) -> str:
    """The target-vs-measured table of the scenarios that ran."""
    row_makers = {"budget": _budget_rows, "poll": _poll_rows, "throughput": _throughput_rows}
    rows = [
        row
        for name, rows_of in row_makers.items()
        if name in results
        for row in rows_of(results[name])
    ]
    lines = [f"{'measure':<40} {'value':>18} {'ratio':>8}  {'target':<20} ok"]
    for name, value, share, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        lines.append(f"{name:<40} {value:>18} {share:>8}  {target:<20} {mark}")
    if "poll" in results:
        lines.append(f"run reads by mode: {results['poll']['reads']}")
    if "budget" in results:
        lines.append(f"fires per window: {results['budget']['fires_per_window']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--window", type=float, default=6.0, help="compressed 60-fire window (s)")
    parser.add_argument("--windows", type=int, default=10, help="windows measured (budget)")
    parser.add_argument("--poll-windows", type=int, default=6, help="windows of fires (polling)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="poller interval (s)")
    parser.add_argument("--fires", type=int, default=3000, help="fires (throughput)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    parser.add_argument("--only", choices=SCENARIOS, help="run this one scenario")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        from brew_bridge.observe.logs import configure_logging

        # As the bridge runs in production: JSON log lines at INFO (to stderr, discarded).
        configure_logging("INFO", "json")
        params = json.loads(args.params)
        tmp = Path(args.dir)
        children: dict[str, Callable[..., dict[str, Any]]] = {
            "budget": child_budget,
            "poll": child_poll,
            "pipeline": child_pipeline,
        }
        if args.child == "bare":
            result = child_bare(args.base_url, **params)
        else:
            result = children[args.child](args.base_url, tmp, **params)
        print(json.dumps(result))
        return 0

    scenarios: dict[str, Callable[[Path], dict[str, Any]]] = {
        "budget": lambda tmp: budget(tmp, args.window, args.windows),
        "poll": lambda tmp: polling(tmp, args.window, args.poll_windows, args.poll_interval),
        "throughput": lambda tmp: throughput(tmp, args.fires, args.concurrency),
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        results = {
            name: run(Path(tmp_dir)) for name, run in scenarios.items() if args.only in (None, name)
        }
    print(_report(results))
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
