"""Reliability under faults: Kafka -> ``brew-bridge run`` -> a misbehaving simulator.

    python bench/faults.py [--events 10000] [--kills 20] [--json]

Every scenario runs the whole pipeline: a local Tansu broker (one topic per scenario),
``brew-bridge run --config X`` as a child process (restarted by this script whenever it
exits before the work is done, as a supervisor would), and the simulator in its own
process (``python -m brew_bridge.cli.sim``), fresh per scenario, answering fires with
15 % 5xx, 3 % resets after the work was done ("the work happened, then the connection
dropped"), 3 % 429s and 0.5 % hangs past the bridge's timeout. Rate limits are lifted on
both sides and the retry delay is capped at 10 s. Events are produced at a steady pace
(``--rate``, 50/s) while the bridge runs.

The default is 2,000 events, not 10,000: an injected 429 says the key's window is spent
for 1 s (``Retry-After: 1``, ``X-RateLimit-Remaining: 0``, the shortest the simulator
gives), and the bridge rightly holds every fire of that key for that second, so 3 % 429s
cap delivery near 30 fires/s whatever the other limits: 10,000 events take about 6 min
per scenario, 36 min for all six on this 2-core machine (measured 2026-12-02).

Scenarios: kill -9 at K random moments (restarted each time); SIGTERM mid-stream, then a
restart; a Brew outage (every request a 503 for 5 rate windows: the simulator keeps
its state in memory, so stopping its process would forget every key); the API key
revoked and restored; a full disk under the outbox (root only: a tmpfs filled, then
freed); a broker restart (the broker stopped a third of the way in, down for 10 s,
past the group's 6 s session timeout, then started again; the bridge is not touched).
The broker restart has a broker of its own on S3 storage
(``running_broker(storage="s3")``: Tansu's objects in the handle's S3 server), which
keeps topics, records and committed offsets across the restart; the others share one
on memory storage. The producer holds its next batch while the broker is down (what it
would otherwise do is the producer's business, not the bridge's).

Per scenario, the work is done when every event is in the outbox, no delivery is pending,
waiting or firing, and no run is live (read from the outbox file with sqlite3). Then:
fires accepted at Brew per Idempotency-Key (the request log: 200 answers, and the
answers a reset swallowed), trigger instances per key (Brew's runs, read afterwards with a
second key: a key with more than one was fired twice), events lost (no fired delivery
and no dead letter), dead letters by reason, and the time from the fault's end until
the work is done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from brew_bridge.testing.faults import CannotMount, fill, small_disk
from brew_bridge.testing.kafka import BrokerHandle, running_broker
from deliver import Simulator as SimulatorProcess  # bench/ is on sys.path: run as a script

BRIDGE_KEY = "brew_bench_bridge"
PROBE_KEY = "brew_bench_probe"  # same brand, own rate windows: reads the runs afterwards
TRIGGER = "tri_fault"
ROUTE = "bench"
WINDOW = 2.0  # seconds: every rate window, and the bridge's request timeout
LIFTED = {"limit": 1_000_000_000, "windowSeconds": WINDOW}
FAULTS: dict[str, Any] = {
    "seed": 7,
    "fire": {
        "errorRate": 0.15,
        "errorStatuses": [500, 502, 503],
        "resetRate": 0.03,  # processed, then the connection dropped unanswered
        "rateLimitRate": 0.03,
        "rateLimitRetryAfter": 1,
        "hangRate": 0.005,
        "hangSeconds": 3 * WINDOW,  # past the bridge's timeout: it gives up, nothing done
    },
}
OUTAGE = {
    "fire": {"errorRate": 1.0, "errorStatuses": [503]},
    "read": {"errorRate": 1.0, "errorStatuses": [503]},
}
_LIVE = ("pending", "retry_wait", "firing")


# -- the simulator -------------------------------------------------------------------------


def _seed() -> str:
    return yaml.safe_dump(
        {
            "requestLogSize": 2_000_000,
            "allowAnyBrewKey": False,
            "keys": {
                BRIDGE_KEY: {"brandId": "brand_bench"},
                PROBE_KEY: {"brandId": "brand_bench"},
            },
            "limits": {"automation.runs.write": LIFTED, "automation.runs.read": LIFTED},
            "triggers": {
                TRIGGER: {
                    "title": TRIGGER,
                    "payloadSchema": {
                        "type": "object",
                        "fields": [{"key": "email", "type": "string", "required": True}],
                    },
                    "automations": [{"automationId": "auto_fault", "durationMs": 300}],
                }
            },
            "faults": FAULTS,
        }
    )


class Simulator(SimulatorProcess):
    """``brew-bridge sim`` in its own process (bench/deliver.py's), seeded for faults."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(_seed(), tmp)

    def put(self, path: str, body: Any) -> None:
        httpx.put(f"{self.root}/_sim/{path}", json=body, timeout=30).raise_for_status()

    def runs(self) -> list[dict[str, Any]]:
        """Every run Brew started, read with the probe key (faults off by then)."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            while True:
                params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
                page = http.get(
                    "/v1/automations/runs",
                    params=params,
                    headers={"Authorization": f"Bearer {PROBE_KEY}"},
                ).json()
                rows.extend(page["data"])
                cursor = page["pagination"]["cursor"]
                if not page["pagination"]["hasMore"] or cursor is None:
                    return rows


# -- the bridge ------------------------------------------------------------------------------


def _config(path: Path, outbox: Path, broker: BrokerHandle, topic: str, base_url: str) -> None:
    lifted = {"limit": 1_000_000_000, "window_seconds": WINDOW}
    doc = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "group_id": f"faults-{topic}",
            "dlq_topic": None,
            "result_topic": None,
            "poll_timeout_ms": 200,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
        },
        "outbox": {"path": str(outbox), "synchronous": "FULL"},
        "brew": {
            "base_url": base_url,
            "timeout_seconds": WINDOW,  # may not exceed any rate window
            "connect_timeout_seconds": 1.0,
            "max_connections": 16,
            "rate_limits": {"fire": lifted, "run_read": lifted, "trigger_read": lifted},
            "retry": {"max_delay_seconds": 10.0},
        },
        "dispatcher": {"concurrency": 16, "ordering_key": None, "auth_probe_seconds": 1.0},
        "poller": {"interval_seconds": 0.5},
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "INFO", "format": "json"},
        "shutdown": {"grace_seconds": 5.0},
        "triggers": {
            TRIGGER: {
                "payload_schema": {
                    "type": "object",
                    "fields": [{"key": "email", "type": "string", "required": True}],
                }
            }
        },
        "routes": [
            {
                "name": ROUTE,
                "topics": [topic],
                "trigger": TRIGGER,
                "id_path": "event.id",
                "idempotency_key": "{route}:{event.id}",
                "payload": {"email": "event.email"},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class Bridge:
    """``brew-bridge run --config X``, restartable; its output goes to one log file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: Counter[int] = Counter()
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock, self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "brew_bridge", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "BREW_API_KEY": BRIDGE_KEY},
            )
            self.starts += 1

    def signal(self, sig: int, timeout: float = 30.0) -> float:
        """Send ``sig``; wait for the exit; seconds it took."""
        with self.lock:
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            proc.send_signal(sig)
            code = proc.wait(timeout)
            self.exits[code] += 1
            self.proc = None
        return time.monotonic() - started

    def supervise(self) -> None:
        """Restart the bridge if it exited on its own (a crash loop gets a 1 s pause)."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is None:
                return
            self.exits[proc.returncode] += 1
            self.proc = None
        time.sleep(1.0)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)


# -- the outbox, read from its file --------------------------------------------------------


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _progress(db: Path) -> dict[str, int]:
    states = dict(_query(db, "SELECT state, count(*) FROM deliveries GROUP BY state"))
    records = _query(db, "SELECT count(*) FROM records")
    live_runs = _query(db, "SELECT count(*) FROM runs WHERE finished_at IS NULL")
    return {
        "records": records[0][0] if records else 0,
        "live": sum(states.get(s, 0) for s in _LIVE),
        "fired": states.get("fired", 0),
        "dead": states.get("dead", 0),
        "live_runs": live_runs[0][0] if live_runs else 0,
    }


def _done(db: Path, events: int) -> bool:
    p = _progress(db)
    return p["records"] >= events and p["live"] == 0 and p["live_runs"] == 0


# -- one scenario ------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    events: int
    broker: BrokerHandle
    tmp: Path
    outbox_dir: Path | None = None
    sim: Simulator = field(init=False)
    bridge: Bridge = field(init=False)
    db: Path = field(init=False)
    produced: threading.Event = field(default_factory=threading.Event)
    producing: threading.Lock = field(default_factory=threading.Lock)  # held: no produce
    fault_end: float | None = None
    notes: list[str] = field(default_factory=list)
    stuck_runs: int = 0

    def progress(self) -> dict[str, int]:
        return _progress(self.db)

    def wait_until(self, check: Callable[[dict[str, int]], bool], limit: float = 600) -> None:
        deadline = time.monotonic() + limit
        while not check(self.progress()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: timed out waiting")
            self.bridge.supervise()
            time.sleep(0.1)


def _produce(run: Run, topic: str, rate: float) -> None:
    chunk = 100
    started = time.monotonic()
    for start in range(0, run.events, chunk):
        values = [
            json.dumps({"id": f"e{i}", "email": f"u{i}@example.com"}).encode()
            for i in range(start, min(run.events, start + chunk))
        ]
        with run.producing:
            run.broker.produce(topic, values, keys=[v[:16] for v in values])
        ahead = started + (start + chunk) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    run.produced.set()


def scenario(
    name: str,
    events: int,
    broker: BrokerHandle,
    tmp: Path,
    fault: Callable[[Run], None],
    *,
    rate: float,
    outbox_dir: Path | None = None,
) -> dict[str, Any]:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    work = tmp / slug
    work.mkdir(parents=True)
    run = Run(name, events, broker, work, outbox_dir)
    topic = f"faults-{slug}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=4)
    run.sim = Simulator(work)
    run.db = (outbox_dir or work) / "outbox.db"
    config = work / "bridge.yaml"
    _config(config, run.db, broker, topic, run.sim.base_url)
    run.bridge = Bridge(config, work / "bridge.log")
    started = time.monotonic()
    try:
        run.bridge.start()
        producer = threading.Thread(target=_produce, args=(run, topic, rate), daemon=True)
        producer.start()
        fault(run)
        run.wait_until(
            lambda p: run.produced.is_set() and p["records"] >= events and p["live"] == 0,
            limit=1800,
        )
        drained_at = time.monotonic()
        _runs_end(run)
        done_at = time.monotonic()
        run.stuck_runs = run.progress()["live_runs"]
        run.bridge.stop()
        run.sim.put("faults", {})  # the probe reads the truth without faults
        return _measure(run, started, drained_at, done_at)
    finally:
        with contextlib.suppress(Exception):
            run.bridge.stop()
        run.sim.close()


def _runs_end(run: Run, patience: float = 30.0) -> None:
    """Every delivery is made: wait for the runs to end. Runs still live ``patience``
    seconds later (they take 0.3 s at Brew) are noted; the bridge is restarted once to
    tell a stuck poller from runs it no longer follows."""
    try:
        run.wait_until(lambda p: p["live_runs"] == 0, limit=patience)
        return
    except TimeoutError:
        pass
    live = run.progress()["live_runs"]
    run.bridge.stop()
    run.bridge.start()
    try:
        run.wait_until(lambda p: p["live_runs"] == 0, limit=patience)
        run.notes.append(f"{live} runs not followed until a bridge restart")
    except TimeoutError:
        left = run.progress()["live_runs"]
        run.notes.append(f"{live} runs not followed; {left} still live after a restart")


def _measure(run: Run, started: float, drained_at: float, done_at: float) -> dict[str, Any]:
    fires = [r for r in run.sim.requests() if r["method"] == "POST" and r["path"].endswith("/fire")]
    accepted: Counter[str] = Counter()
    for r in fires:
        if r["status"] == 200 and r["fault"] in (None, "reset"):
            accepted[r["idempotencyKey"]] += 1
    instances: defaultdict[str, set[str]] = defaultdict(set)
    for row in run.sim.runs():
        instances[row.get("recipientEmail", "")].add(row["triggerInstanceId"])
    keys = [f"{ROUTE}:e{i}" for i in range(run.events)]
    triggered = [len(instances.get(f"u{i}@example.com", ())) for i in range(run.events)]
    delivered = {k for (k,) in _query(run.db, "SELECT idempotency_key FROM deliveries")}
    fired = {
        k for (k,) in _query(run.db, "SELECT idempotency_key FROM deliveries WHERE state='fired'")
    }
    dead_keys = {
        k for (k,) in _query(run.db, "SELECT idempotency_key FROM dead_letters") if k is not None
    }
    reasons = dict(_query(run.db, "SELECT reason, count(*) FROM dead_letters GROUP BY reason"))
    faults = Counter(r["fault"] or str(r["status"]) for r in fires)
    return {
        "scenario": run.name,
        "events": run.events,
        "records": run.progress()["records"],
        "fire_requests": len(fires),
        "fire_answers": dict(sorted(faults.items())),
        "accepted_fires": sum(accepted.values()),
        "keys_accepted": sum(1 for k in keys if accepted[k]),
        "replays": sum(max(0, accepted[k] - 1) for k in keys),
        "keys_triggered_0": sum(1 for t in triggered if t == 0),
        "keys_triggered_1": sum(1 for t in triggered if t == 1),
        "keys_triggered_many": sum(1 for t in triggered if t > 1),
        "deliveries": len(delivered),
        "lost": sum(1 for k in keys if k not in fired and k not in dead_keys),
        "dead_letters": reasons,
        "bridge_starts": run.bridge.starts,
        "bridge_exits": {str(k): v for k, v in sorted(run.bridge.exits.items())},
        "runs_left_live": run.stuck_runs,
        "recover_seconds": None if run.fault_end is None else drained_at - run.fault_end,
        "runs_ended_seconds": None if run.fault_end is None else done_at - run.fault_end,
        "wall_seconds": drained_at - started,
        "notes": run.notes,
    }


# -- the faults ----------------------------------------------------------------------------------


def kills(count: int, seed: int = 1) -> Callable[[Run], None]:
    def fault(run: Run) -> None:
        rng = random.Random(seed)
        for _ in range(count):
            time.sleep(rng.uniform(0.5, 4.0))
            run.bridge.supervise()
            run.bridge.signal(signal.SIGKILL)
            run.bridge.start()
        run.fault_end = time.monotonic()
        run.notes.append(f"{count} x SIGKILL, 0.5-4 s apart, restarted at once")

    return fault


def sigterm(run: Run) -> None:
    run.wait_until(lambda p: p["records"] >= run.events // 3)
    took = run.bridge.signal(signal.SIGTERM)
    run.notes.append(f"SIGTERM at {run.events // 3} records in; stopped in {took:.1f} s")
    time.sleep(2.0)
    run.bridge.start()
    run.fault_end = time.monotonic()


def outage(run: Run) -> None:
    run.wait_until(lambda p: p["fired"] >= run.events // 4)
    run.sim.put("faults", OUTAGE)
    time.sleep(5 * WINDOW)
    run.sim.put("faults", FAULTS)
    run.fault_end = time.monotonic()
    run.notes.append(f"every request 503 for {5 * WINDOW:g} s (5 windows)")


def revoked(run: Run) -> None:
    run.wait_until(lambda p: p["fired"] >= run.events // 4)
    run.sim.put(f"keys/{BRIDGE_KEY}", {"brandId": "brand_bench", "revoked": True})
    time.sleep(10.0)
    run.sim.put(f"keys/{BRIDGE_KEY}", {"brandId": "brand_bench"})
    run.fault_end = time.monotonic()
    run.notes.append("key revoked for 10 s (auth_probe_seconds 1)")


def disk_full(run: Run) -> None:
    assert run.outbox_dir is not None
    run.wait_until(lambda p: p["records"] >= run.events // 4)
    filler = fill(run.outbox_dir)
    time.sleep(10.0)
    run.bridge.supervise()
    filler.unlink()
    run.fault_end = time.monotonic()
    run.notes.append("outbox tmpfs filled for 10 s, then freed")


BROKER_DOWN = 10.0  # seconds: past the group's session timeout (6 s)


def broker_restart(run: Run) -> None:
    run.wait_until(lambda p: p["records"] >= run.events // 3)
    with run.producing:
        at = run.progress()["records"]
        run.broker.stop()
        deadline = time.monotonic() + BROKER_DOWN
        while time.monotonic() < deadline:
            run.bridge.supervise()  # a bridge that gives up shows in its exits
            time.sleep(0.1)
        started = time.monotonic()
        run.broker.start()
        up = time.monotonic() - started
    run.fault_end = time.monotonic()
    run.notes.append(
        f"broker (S3 storage) stopped at {at} records in, down {BROKER_DOWN:g} s, "
        f"up again in {up:.1f} s; the bridge left running"
    )


# -- report --------------------------------------------------------------------------------------


def _report(results: list[dict[str, Any]], skipped: list[tuple[str, str]]) -> str:
    head = (
        f"{'scenario':<20} {'events':>7} {'accepted':>9} {'once':>7} {'0x':>4} {'>1x':>4} "
        f"{'lost':>5} {'runs':>5} {'recover':>8} {'wall':>6}  dead letters"
    )
    lines = [head]
    for r in results:
        dead = ", ".join(f"{k} {v}" for k, v in r["dead_letters"].items()) or "none"
        recover = "" if r["recover_seconds"] is None else f"{r['recover_seconds']:.1f} s"
        lines.append(
            f"{r['scenario']:<20} {r['events']:>7} {r['accepted_fires']:>9} "
            f"{r['keys_triggered_1']:>7} {r['keys_triggered_0']:>4} "
            f"{r['keys_triggered_many']:>4} {r['lost']:>5} {r['runs_left_live']:>5} {recover:>8} "
            f"{r['wall_seconds']:>5.0f}s  {dead}"
        )
    for name, why in skipped:
        lines.append(f"{name:<20} skipped: {why}")
    lines.append(
        "accepted: fires answered 200 (or processed, then reset) at the simulator; once / "
        "0x / >1x: events whose key started exactly one / no / several trigger instances "
        "at Brew; lost: no fired delivery and no dead letter; runs: runs the bridge still "
        "held live at the end (see the notes); recover: the fault's end -> the backlog "
        "drained (every event fired or dead-lettered); wall: start -> drained."
    )
    for r in results:
        lines.append(
            f"  {r['scenario']}: {'; '.join(r['notes'])}; fire answers {r['fire_answers']}; "
            f"bridge starts {r['bridge_starts']}, exits {r['bridge_exits']}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s produced")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    args = parser.parse_args()
    # A SIGTERM to this script still stops the bridge, the simulator and the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    plan: list[tuple[str, Callable[[Run], None]]] = [
        (f"kill -9 x{args.kills}", kills(args.kills)),
        ("sigterm + restart", sigterm),
        ("brew outage", outage),
        ("key revoked", revoked),
        ("disk full", disk_full),
        ("broker restart", broker_restart),
    ]
    only = set(args.only.split(",")) if args.only else None
    results: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_dir, running_broker() as broker:
        tmp = Path(tmp_dir)
        for name, fault in plan:
            slug = name.split()[0].replace("-", "")
            if only is not None and slug not in only:
                continue
            print(f"... {name}", file=sys.stderr, flush=True)
            if fault is disk_full:
                if os.geteuid() != 0:
                    skipped.append((name, "needs root to mount a tmpfs"))
                    continue
                try:
                    with small_disk(tmp / "disk", size_mb=128) as disk:
                        results.append(
                            scenario(
                                "disk full",
                                args.events,
                                broker,
                                tmp,
                                fault,
                                rate=args.rate,
                                outbox_dir=disk,
                            )
                        )
                except CannotMount as exc:
                    skipped.append((name, f"cannot mount a tmpfs: {exc}"))
                continue
            if fault is broker_restart:  # a broker of its own, whose restart keeps its data
                with running_broker(storage="s3") as durable:
                    results.append(scenario(name, args.events, durable, tmp, fault, rate=args.rate))
                continue
            results.append(scenario(name, args.events, broker, tmp, fault, rate=args.rate))
    print(_report(results, skipped))
    if args.json:
        print(json.dumps({"results": results, "skipped": skipped}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
