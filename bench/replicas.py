"""Replicas sharing one Brew key: budget use, the most in any window, 429s.

    python bench/replicas.py [--replicas 3] [--window 6] [--windows 10]
                             [--redis-url redis://127.0.0.1:6379/0] [--json]

One simulator process (bench/deliver.py's) with the fire limit compressed to 60 per
``--window`` seconds; ``--replicas`` ``brew-bridge run --no-consume`` processes, each
with its own outbox holding more than the whole budget's worth of deliveries, all with
the SAME API key. Measured from the simulator's request log over ``--windows``
windows, starting once every replica has fired (so a late start counts for nobody):
fires per window / 60 (mean and min), the most fires in any sliding window (<= 60) and
429 answers (0), over the whole run. The window in which the replicas meet (from the
first fire after every replica has fired) is reported apart: it is a start, not the
steady state the mean is about. Three scenarios, one after another in the same run:

1. one replica alone (the baseline: what the budget allows one process),
2. the replicas pacing from the server's numbers only (no shared store),
3. the replicas with the Redis shared limiter (``rate_limits.shared.redis_url``).

Exits 1 when a target is missed in scenario 2 or 3: >= 97 % of the budget, 0 x 429,
never more than 60 in any window.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brew_bridge.testing.windows import most_in_window

# bench/ is on the path when run as a script.
from deliver import BRIDGE_KEY, Simulator, _fires, _queue, _seed, write_run_config

LIMIT = 60
TARGET_SHARE = 0.97
TRIGGER = "tri_a"


def _config(path: Path, outbox: Path, base_url: str, window: float, redis_url: str | None) -> None:
    limits: dict[str, Any] = {
        "fire": {"limit": LIMIT, "window_seconds": window},
        "run_read": {"limit": 100, "window_seconds": window},
    }
    if redis_url is not None:
        limits["shared"] = {"redis_url": redis_url}
    brew = {
        "base_url": base_url,
        "timeout_seconds": min(30.0, window),  # may not outlive a rate window
        "rate_limits": limits,
    }
    write_run_config(path, outbox, TRIGGER, brew, poller={"interval_seconds": window / 2})


def _fired(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT count(*) FROM deliveries WHERE state <> 'pending' AND state = 'fired'"
        ).fetchone()
    finally:
        db.close()
    return int(row[0])


def scenario(
    tmp: Path, name: str, replicas: int, window: float, windows: int, redis_url: str | None
) -> dict[str, Any]:
    from brew_bridge.store import Outbox

    limits = {
        "automation.runs.write": {"limit": LIMIT, "windowSeconds": window},
        "automation.runs.read": {"limit": 100, "windowSeconds": window},
    }
    sim = Simulator(_seed({TRIGGER: 500}, limits), tmp)
    backlog = LIMIT * (windows + 4)  # any one replica could take the whole budget
    procs: list[subprocess.Popen[bytes]] = []
    outboxes: list[Path] = []
    try:
        for r in range(replicas):
            here = tmp / name / f"replica-{r}"
            here.mkdir(parents=True)
            outbox = here / "outbox.db"
            with Outbox.open(outbox) as box:
                _queue(box, [(TRIGGER, f"{name}-{r}-{i}") for i in range(backlog)])
            _config(here / "config.yaml", outbox, sim.base_url, window, redis_url)
            outboxes.append(outbox)
        for outbox in outboxes:
            log = (outbox.parent / "bridge.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "brew_bridge", "run"),
                        *("--config", str(outbox.parent / "config.yaml"), "--no-consume"),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "BREW_API_KEY": BRIDGE_KEY},
                )
            )
            log.close()
        # Every replica fired, then one window while they meet (reported apart), then
        # the windows measured, plus one: the log must cover the last window whole.
        deadline = time.monotonic() + 60
        while not all(_fired(o) for o in outboxes):
            for p, o in zip(procs, outboxes, strict=True):
                if p.poll() is not None:
                    tail = (o.parent / "bridge.log").read_text()[-3000:]
                    raise SystemExit(f"a replica exited ({p.returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: not every replica fired within 60 s")
            time.sleep(0.2)
        all_fired = time.time()
        time.sleep((windows + 2) * window)  # the run itself: nothing is polled meanwhile
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        log = _fires(sim.requests())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sim.close()
    accepted = sorted(r["at"] for r in log if r["status"] == 200)
    # The replicas meet in the window from the first fire after every replica had fired
    # once; the measured windows follow it.
    met = next(t for t in accepted if t >= all_fired - 0.5)
    t0 = met + window
    measured = [t for t in accepted if t0 <= t < t0 + windows * window]
    per_window = [
        sum(1 for t in measured if t0 + k * window <= t < t0 + (k + 1) * window)
        for k in range(windows)
    ]
    return {
        "replicas": replicas,
        "redis": redis_url is not None,
        "meeting_window": sum(1 for t in accepted if met <= t < t0),
        "fires_per_window": per_window,
        "mean_share": sum(per_window) / (windows * LIMIT),
        "min_share": min(per_window) / LIMIT,
        "max_sliding": most_in_window(accepted, window),
        "fire_429s": sum(1 for r in log if r["status"] == 429),
        # Seconds from the first fire: at the start (replicas meeting) or in the run.
        "429_at": [round(r["at"] - accepted[0], 2) for r in log if r["status"] == 429],
        "per_replica": [_fired(o) for o in outboxes],
    }


def _report(results: dict[str, dict[str, Any]], window: float) -> tuple[str, bool]:
    lines = [
        f"{'scenario':<34} {'mean use':>9} {'min use':>8} {'meeting':>8}"
        f" {'max/' + format(window, 'g') + 's':>8} {'429s':>5}  fired per replica"
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<34} {r['mean_share']:>9.1%} {r['min_share']:>8.1%}"
            f" {r['meeting_window'] / LIMIT:>8.1%} {r['max_sliding']:>8} {r['fire_429s']:>5}"
            f"  {r['per_replica']}"
        )
    lines += ["", f"{'target':<44} {'measured':>24} ok"]
    ok_all = True
    for name, r in results.items():
        if r["replicas"] == 1:
            continue
        checks = [
            (f"{name}: mean use >= 97 %", f"{r['mean_share']:.1%}", r["mean_share"] >= 0.97),
            (f"{name}: 429 answers = 0", str(r["fire_429s"]), r["fire_429s"] == 0),
            (f"{name}: max in any window <= 60", str(r["max_sliding"]), r["max_sliding"] <= 60),
        ]
        for target, value, ok in checks:
            ok_all &= ok
            lines.append(f"{target:<44} {value:>24} {'yes' if ok else 'NO'}")
    for name, r in results.items():
        lines.append(
            f"{name}: fires per window {r['fires_per_window']} (meeting: {r['meeting_window']});"
            f" 429s at {r['429_at']} s from the first fire"
        )
    return "\n".join(lines), ok_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--window", type=float, default=6.0, help="compressed 60-fire window (s)")
    parser.add_argument("--windows", type=int, default=10, help="windows measured")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        n = args.replicas
        runs = {
            "1 replica (baseline)": (1, None),
            f"{n} replicas, pacing only": (n, None),
            f"{n} replicas, Redis shared limiter": (n, args.redis_url),
        }
        results = {
            name: scenario(tmp, f"s{i}", replicas, args.window, args.windows, redis)
            for i, (name, (replicas, redis)) in enumerate(runs.items())
        }
    text, ok = _report(results, args.window)
    print(text)
    if args.json:
        print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
