"""Restart after ``kill -9`` with a big backlog: time to the first fire and to full rate.

    python bench/restart.py [--pending 100000] [--kills 3] [--json]

The simulator runs in its own process (bench/deliver.py's, limits lifted); ``--pending``
deliveries are stored in an outbox file up front (``Outbox.store_batch`` in batches of
10,000, as ingest stores them); then ``brew-bridge run --config X --no-consume`` runs as
a child process (no Kafka: it delivers what the outbox holds, its poller follows the
runs at the shipped 2 s interval). Once it fires at a steady rate it is killed with
SIGKILL and started again at once, as a supervisor would, ``--kills`` times; the last
one is stopped with SIGTERM.

From each start (the ``Popen``) to the first fire the simulator logged, and to full
rate: the first moment the fires of the last second reach 90 % of the rate before the
kill (the last 2 s of the killed process). The very first (cold) start is measured the
same way, against its own steady rate, in the same run: the table gives restart ÷
cold-start ratios, which a shared machine disturbs less than absolute seconds. Also the
bridge's RSS holding the backlog (``/proc``: just before each kill, and its peak), and
where a restart's first second goes (the bridge's log: start -> "brew-bridge running"
-> the firing rows set pending again -> the first fire; then, on the outbox file after
the run, ``Outbox.open``, ``recover_firing`` and one ``claim_due`` timed alone).

Exits 1 when a target is missed: the first fire after a kill -9 within 1 s (median of
the kills), full rate back after every kill, peak RSS <= 100 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from deliver import (  # bench/ on path
    BRIDGE_KEY,
    LIFTED,
    Simulator,
    _fires,
    _queue,
    _seed,
    write_run_config,
)

TRIGGER = "tri_fast"
BATCH = 10_000
FULL_SHARE = 0.9  # "full rate": the fires of the last second >= 90 % of the rate before
STEADY = 0.10  # fires of the last two seconds within 10 % of each other: steady
SETTLE = 4.0  # seconds of firing, at least, before a kill
SPAN = 2.0  # seconds before a kill its rate is taken over
PATIENCE = 30.0  # seconds a process gets to reach a steady rate
TARGET_FIRST_FIRE = 1.0  # seconds, after a kill -9 (issue 13)
TARGET_RSS_MB = 100.0  # holding 100k pending (issue 13)


# -- setup ----------------------------------------------------------------------------------


def _store(path: Path, pending: int) -> float:
    """``pending`` deliveries stored in a new outbox file; seconds it took."""
    from brew_bridge.store import Outbox

    started = time.perf_counter()
    with Outbox.open(path) as outbox:
        for start in range(0, pending, BATCH):
            _queue(outbox, [(TRIGGER, f"r{i}") for i in range(start, min(pending, start + BATCH))])
    return time.perf_counter() - started


def _config(path: Path, outbox: Path, base_url: str, poll_interval: float) -> None:
    lifted = {"limit": LIFTED["limit"], "window_seconds": LIFTED["windowSeconds"]}
    brew = {
        "base_url": base_url,
        "timeout_seconds": 1.0,  # may not exceed any rate window (1 s, lifted)
        "max_connections": 16,
        "rate_limits": {"fire": lifted, "run_read": lifted, "trigger_read": lifted},
    }
    write_run_config(
        path,
        outbox,
        TRIGGER,
        brew,
        dispatcher={"concurrency": 16},
        poller={"interval_seconds": poll_interval},
    )


# -- one bridge process ----------------------------------------------------------------------


def _fired(db: sqlite3.Connection) -> int:
    # "<> 'pending'" finds the rows through the partial index deliveries_settled.
    row = db.execute(
        "SELECT count(*) FROM deliveries WHERE state <> 'pending' AND state = 'fired'"
    ).fetchone()
    return int(row[0])


def _memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def _instance(
    config: Path, outbox: Path, log: Path, end: int, reference: float | None
) -> dict[str, Any]:
    """Start the bridge, wait for a steady rate (back to FULL_SHARE x ``reference``, the
    rate before the last kill, when given), end it with ``end``; what was seen."""
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=30)
    before = _fired(db)
    with log.open("wb") as out:
        started = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "brew_bridge", "run", "--config", str(config), "--no-consume"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BREW_API_KEY": BRIDGE_KEY},
        )
    samples: list[tuple[float, int]] = []  # (time, fired since start), every 0.2 s
    first_seen: float | None = None
    try:
        while True:
            time.sleep(0.2)
            if proc.poll() is not None:
                tail = log.read_text()[-3000:]
                raise SystemExit(f"the bridge exited ({proc.returncode}):\n{tail}")
            now = time.time()
            samples.append((now, _fired(db) - before))
            if first_seen is None and samples[-1][1] > 0:
                first_seen = now
            if now - started > PATIENCE + 10:
                raise SystemExit("the bridge did not reach a steady rate in time")
            if first_seen is None or now - first_seen < SETTLE:
                continue
            r1 = _since(samples, now - 1.0)
            r0 = _since(samples, now - 2.0) - r1
            steady = abs(r1 - r0) <= STEADY * max(r0, r1) and r1 > 0
            full = reference is None or r1 >= FULL_SHARE * reference
            if (steady and full) or now - first_seen > PATIENCE:
                break
        memory = _memory(proc.pid)
        ended = time.time()
        proc.send_signal(end)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        db.close()
    return {
        "started": started,
        "ended": ended,
        "online_rate": _since(samples, samples[-1][0] - SPAN) / SPAN,
        "exit": code,
        "fired": samples[-1][1],
        **memory,
        "log": _milestones(log),
    }


def _since(samples: Sequence[tuple[float, int]], t: float) -> int:
    """Fires counted after ``t`` (from the 0.2 s samples)."""
    last = samples[-1][1]
    earlier = [n for at, n in samples if at <= t]
    return last - (earlier[-1] if earlier else 0)


def _milestones(log: Path) -> dict[str, Any]:
    """From the bridge's JSON log: when it was running, when it set firing rows pending."""
    found: dict[str, Any] = {}
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event")
        at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        if event == "brew-bridge running" and "running" not in found:
            found["running"] = at
        elif event == "rows left firing by a previous run are pending again":
            found["recovered"] = at
            found["recovered_rows"] = entry.get("rows")
        elif event == "fired" and "first_fired_logged" not in found:
            found["first_fired_logged"] = at
    return found


# -- measurements ---------------------------------------------------------------------------


def _rate_before(fires: Sequence[float], ended: float, span: float = SPAN) -> float:
    return sum(1 for t in fires if ended - span <= t < ended) / span


def _to_full(fires: Sequence[float], started: float, rate: float) -> float | None:
    """Seconds from ``started`` until the fires of the last second reach FULL_SHARE x rate."""
    need = FULL_SHARE * rate
    lo = 0
    for hi, t in enumerate(fires):
        while fires[lo] <= t - 1.0:
            lo += 1
        if hi - lo + 1 >= need:
            return t - started
    return None


def _measure(instances: list[dict[str, Any]], log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at = sorted(r["at"] for r in _fires(log))
    previous_rate: float | None = None
    for inst in instances:
        fires = [t for t in at if inst["started"] <= t < inst["ended"]]
        rate = _rate_before(fires, inst["ended"])
        against = rate if previous_rate is None else previous_rate
        first = fires[0] if fires else None
        milestones = inst["log"]
        running = milestones.get("running")
        inst.update(
            fires_at_brew=len(fires),
            per_second=[
                sum(1 for t in fires if k <= t - inst["started"] < k + 1)
                for k in range(math.ceil(inst["ended"] - inst["started"]))
            ],
            rate_before_kill=rate,
            full_rate_against=against,
            first_fire=None if first is None else first - inst["started"],
            full_rate=_to_full(fires, inst["started"], against),
            to_running=milestones.get("running", inst["started"]) - inst["started"],
            running_to_first_fire=None if first is None or running is None else first - running,
            recovered_rows=milestones.get("recovered_rows", 0),
        )
        previous_rate = rate
    return instances


def _outbox_steps(outbox: Path) -> dict[str, float]:
    """Seconds of each step a restart takes on the outbox, alone (after the run)."""
    from brew_bridge.store import Outbox

    t0 = time.perf_counter()
    box = Outbox.open(outbox)
    t1 = time.perf_counter()
    try:
        box.recover_firing("brew")
        t2 = time.perf_counter()
        box.claim_due(time.time(), 16, ordered=True, per_route=True, target="brew")
        t3 = time.perf_counter()
        pending = box.backlog()
    finally:
        box.close()
    return {"open": t1 - t0, "recover_firing": t2 - t1, "claim_due_16": t3 - t2, "backlog": pending}


def _import_seconds(repeat: int = 3) -> float:
    """A fresh interpreter importing the worker (most of what a start costs before it runs)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import brew_bridge.cli.run, brew_bridge.worker"], check=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- report -----------------------------------------------------------------------------------


def _summary(cold: dict[str, Any], kills: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(name: str) -> dict[str, Any]:
        values = [k[name] for k in kills]
        known = [v for v in values if v is not None]
        return {
            "values": values,
            "median": statistics.median(known) if known else None,
            "max": None if len(known) < len(values) else max(known),
            "cold": cold[name],
        }

    return {
        name: stats(name)
        for name in (
            "first_fire",
            "full_rate",
            "to_running",
            "running_to_first_fire",
            "rate_before_kill",
            "rss_mb",
            "peak_rss_mb",
        )
    }


def _fmt(value: float | None, unit: str = " s", digits: int = 2) -> str:
    return "not reached" if value is None else f"{value:.{digits}f}{unit}"


def _report(results: dict[str, Any]) -> tuple[str, bool]:
    s = results["summary"]
    ff, fr, rss = s["first_fire"], s["full_rate"], s["peak_rss_mb"]
    first_ok = ff["median"] is not None and ff["median"] <= TARGET_FIRST_FIRE
    full_ok = fr["max"] is not None
    rss_ok = max([rss["cold"], *rss["values"]]) <= TARGET_RSS_MB

    def ratio(stat: dict[str, Any]) -> str:
        if stat["median"] is None or not stat["cold"]:
            return ""
        return f"{stat['median'] / stat['cold']:.2f}"

    rows = [
        (
            "first fire after kill -9",
            f"median <= {TARGET_FIRST_FIRE:g} s",
            f"{_fmt(ff['median'])} / {_fmt(ff['max'])}",
            _fmt(ff["cold"]),
            ratio(ff),
            "yes" if first_ok else "NO",
        ),
        (
            f"full rate ({FULL_SHARE:.0%} of before) after kill -9",
            "reached every time",
            f"{_fmt(fr['median'])} / {_fmt(fr['max'])}",
            _fmt(fr["cold"]),
            ratio(fr),
            "yes" if full_ok else "NO",
        ),
        (
            "  start -> 'brew-bridge running'",
            "",
            f"{_fmt(s['to_running']['median'])} / {_fmt(s['to_running']['max'])}",
            _fmt(s["to_running"]["cold"]),
            ratio(s["to_running"]),
            "",
        ),
        (
            "  'running' -> first fire at Brew",
            "",
            f"{_fmt(s['running_to_first_fire']['median'])} / "
            f"{_fmt(s['running_to_first_fire']['max'])}",
            _fmt(s["running_to_first_fire"]["cold"]),
            ratio(s["running_to_first_fire"]),
            "",
        ),
        (
            "fires/s before the kill",
            "",
            f"{_fmt(s['rate_before_kill']['median'], '', 0)} / "
            f"{_fmt(s['rate_before_kill']['max'], '', 0)}",
            _fmt(s["rate_before_kill"]["cold"], "", 0),
            ratio(s["rate_before_kill"]),
            "",
        ),
        (
            f"bridge RSS at {results['pending'] // 1000}k pending (peak)",
            f"<= {TARGET_RSS_MB:g} MB",
            f"{_fmt(rss['median'], ' MB', 0)} / {_fmt(rss['max'], ' MB', 0)}",
            _fmt(rss["cold"], " MB", 0),
            ratio(rss),
            "yes" if rss_ok else "NO",
        ),
    ]
    head = ("measure", "target", "after kill: median / max", "cold start", "ratio", "ok")
    widths = (42, 20, 26, 12, 6, 3)
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    steps = results["outbox_steps"]
    lines.append(
        f"kills: {results['kills']}; pending at the start {results['pending']:,}, at the end "
        f"{steps['backlog']:,}; stored in {results['store_seconds']:.1f} s; rows left firing "
        f"per kill: {[k['recovered_rows'] for k in results['instances'][1:]]}"
    )
    lines.append(
        f"alone, after the run: interpreter + imports {results['import_seconds']:.2f} s, "
        f"Outbox.open {steps['open'] * 1000:.0f} ms, recover_firing "
        f"{steps['recover_firing'] * 1000:.0f} ms, "
        f"claim_due(16) {steps['claim_due_16'] * 1000:.0f} ms"
    )
    return "\n".join(lines), first_ok and full_ok and rss_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pending", type=int, default=100_000, help="deliveries pending")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 and restart, this often")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="the bridge's poller")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        limits = {"automation.runs.write": LIFTED, "automation.runs.read": LIFTED}
        sim = Simulator(_seed({TRIGGER: 1000}, limits), tmp)
        try:
            outbox = tmp / "outbox.db"
            store_seconds = _store(outbox, args.pending)
            config = tmp / "bridge.yaml"
            _config(config, outbox, sim.base_url, args.poll_interval)
            instances: list[dict[str, Any]] = []
            for n in range(args.kills + 1):
                end = signal.SIGKILL if n < args.kills else signal.SIGTERM
                before = instances[-1]["online_rate"] if instances else None
                instances.append(_instance(config, outbox, tmp / f"bridge-{n}.log", end, before))
            log = sim.requests()
        finally:
            sim.close()
        measured = _measure(instances, log)
        results: dict[str, Any] = {
            "pending": args.pending,
            "kills": args.kills,
            "store_seconds": store_seconds,
            "instances": measured,
            "summary": _summary(measured[0], measured[1:]),
            "outbox_steps": _outbox_steps(outbox),
            "import_seconds": _import_seconds(),
        }
    table, ok = _report(results)
    print(table)
    if args.json:
        print(json.dumps(results, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
