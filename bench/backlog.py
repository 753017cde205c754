"""Memory over a large Kafka backlog: the bridge's RSS as 1M records drain into the outbox.

    python bench/backlog.py [--events 1000000] [--partitions 3] [--batch 500]
                            [--routing-workers 0] [--no-hold] [--json]

Produces ``--events`` example events (the three families, ~1 KB each) into a Tansu
broker, then drains that backlog, each path in its own process (so its RSS is its own):

* bare:   aiokafka getmany + json.loads + one executemany per batch (bench/ingest.py's);
* bridge: brew-bridge's Kafka source with the example routes into a fresh outbox, nobody
  firing and ``high_water`` out of reach, so backpressure never pauses it (bench/ingest.py's).

Each path notes its RSS (``/proc/self/status``) and the Python objects the GC tracks once
a tenth, a quarter, half, three quarters and all of the records are stored, and its peak
(VmHWM). Flat means the RSS at every later mark is within 10 % of the RSS at a tenth.

Then the other half, the bridge holding the backlog (unless ``--no-hold``): an outbox
holding a tenth of ``--events`` pending deliveries, then one holding all of them (stored
as bench/restart.py stores them), each served by ``brew-bridge run --no-consume`` against
the simulator with limits lifted until it fires at a steady rate (bench/restart.py's
pieces): its RSS then, and its peak.

Targets (exit 1 when missed): peak RSS <= 100 MB draining and holding, growth from a
tenth to any later share of the backlog <= 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import bare, bridge, measure, peak_rss_mb, produce, rss_mb  # bench/ on the path

TARGET_PEAK_MB = 100.0
TARGET_GROWTH = 0.10  # RSS at the end over RSS at a tenth of the records, at most +10 %
MARKS = (0.10, 0.25, 0.50, 0.75, 1.0)  # shares of the backlog the RSS is noted at


class Marks:
    """RSS and GC-tracked objects at each share of ``expect`` records stored."""

    def __init__(self, expect: int) -> None:
        self._at = [max(1, round(share * expect)) for share in MARKS]
        self.stored = 0
        self.seen: list[dict[str, float]] = []

    def on_stored(self, records: int) -> None:
        self.stored += records
        while self._at and self.stored >= self._at[0]:
            self.seen.append(
                {"mark": self._at.pop(0), "rss_mb": rss_mb(), "objects": len(gc.get_objects())}
            )


# -- one drain, in its own process -------------------------------------------------------------


def drain(args: argparse.Namespace) -> dict[str, Any]:
    marks = Marks(args.events)
    topic_map = json.loads(args.topics)
    coro: Any
    if args.role == "bare":
        topics = list(topic_map.values())
        coro = bare(args.bootstrap, topics, args.events, args.batch, args.db, marks.on_stored)
    else:
        coro = bridge(
            args.bootstrap,
            topic_map,
            args.events,
            args.batch,
            args.db,
            args.routing_workers,
            on_stored=marks.on_stored,
        )
    result: dict[str, Any] = asyncio.run(coro)
    # VmHWM can trail a VmRSS read a moment before (the kernel folds RSS counters lazily).
    peak = max([peak_rss_mb(), *(m["rss_mb"] for m in marks.seen)])
    return {**result, "marks": marks.seen, "rss_mb": peak}


def growth(result: dict[str, Any]) -> float:
    """The highest RSS at a later mark over the RSS at a tenth, minus one."""
    first, *later = (m["rss_mb"] for m in result["marks"])
    return float(max(later, default=first) / first - 1)


# -- holding the backlog: bench/restart.py's pieces -------------------------------------------


def hold(tmp: Path, sizes: list[int]) -> list[dict[str, Any]]:
    """``brew-bridge run --no-consume`` on an outbox of each size, until it fires steadily."""
    from deliver import LIFTED, Simulator, _seed
    from restart import TRIGGER, _config, _instance, _store

    limits = {"automation.runs.write": LIFTED, "automation.runs.read": LIFTED}
    sim = Simulator(_seed({TRIGGER: 1000}, limits), tmp)
    held = []
    try:
        for pending in sizes:
            outbox, config = tmp / f"hold-{pending}.db", tmp / f"hold-{pending}.yaml"
            stored = _store(outbox, pending)
            _config(config, outbox, sim.base_url, 2.0)
            run = _instance(config, outbox, tmp / f"hold-{pending}.log", signal.SIGTERM, None)
            held.append({"pending": pending, "store_seconds": stored, **run})
            print(
                f"holding {pending:,} pending: RSS {run['rss_mb']:.1f} MB, peak "
                f"{run['peak_rss_mb']:.1f} MB at {run['online_rate']:.0f} fires/s "
                f"(stored in {stored:.0f} s)",
                flush=True,
            )
            outbox.unlink()
    finally:
        sim.close()
    return held


# -- the report -------------------------------------------------------------------------------


def report(events: int, bare_r: dict[str, Any], bridge_r: dict[str, Any], held: list[Any]) -> bool:
    print(f"{'records stored':>15}{'bare RSS MB':>13}{'bridge RSS MB':>15}{'bridge objects':>16}")
    for b, r in zip(bare_r["marks"], bridge_r["marks"], strict=True):
        print(f"{b['mark']:>15,}{b['rss_mb']:>13.1f}{r['rss_mb']:>15.1f}{r['objects']:>16,}")
    print(f"{'peak':>15}{bare_r['rss_mb']:>13.1f}{bridge_r['rss_mb']:>15.1f}")
    tenth = f"{bridge_r['marks'][0]['mark'] // 1000}k"
    print(
        f"{f'growth {tenth}->{events // 1000}k':>15}{growth(bare_r):>13.1%}"
        f"{growth(bridge_r):>15.1%}"
    )
    print(
        f"drain: bare {bare_r['events'] / bare_r['seconds']:,.0f} events/s, bridge "
        f"{bridge_r['events'] / bridge_r['seconds']:,.0f} events/s ({bridge_r['inserted']:,} "
        f"deliveries, {bridge_r['dead_letters']:,} dead letters)"
    )
    rows = [
        ("bridge peak RSS draining", f"<= {TARGET_PEAK_MB:g} MB", bridge_r["rss_mb"], " MB"),
        (f"bridge RSS growth {tenth} -> later", f"<= {TARGET_GROWTH:.0%}", growth(bridge_r), "%"),
    ]
    if held:
        small, big = held[0], held[-1]
        peak = max(h["peak_rss_mb"] for h in held)
        rows.append(("bridge peak RSS holding pending", f"<= {TARGET_PEAK_MB:g} MB", peak, " MB"))
        rows.append(
            (
                f"holding RSS growth {small['pending'] // 1000}k -> {big['pending'] // 1000}k",
                f"<= {TARGET_GROWTH:.0%}",
                big["rss_mb"] / small["rss_mb"] - 1,
                "%",
            )
        )
    print(f"{'measure':<40}{'target':<12}{'measured':>10}  ok")
    ok = True
    for name, target, value, unit in rows:
        met = value <= (TARGET_GROWTH if unit == "%" else TARGET_PEAK_MB)
        ok = ok and met
        shown = f"{value:.1%}" if unit == "%" else f"{value:.1f}{unit}"
        print(f"{name:<40}{target:<12}{shown:>10}  {'yes' if met else 'NO'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--routing-workers", type=int, default=0, help="kafka.routing_workers")
    parser.add_argument("--no-hold", action="store_true", help="skip the holding-pending half")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    parser.add_argument("--role", choices=["bare", "bridge"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topics", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        print(json.dumps(drain(args)))
        return 0

    from brew_bridge.testing.kafka import running_broker

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with running_broker() as broker:
            t0 = time.perf_counter()
            topics = produce(broker, args.events, args.partitions, "backlog", progress=True)
            print(f"produced {args.events:,} events in {time.perf_counter() - t0:.0f} s")

            def run(role: str) -> dict[str, Any]:
                db = tmp / f"{role}.db"
                common = ["--bootstrap", broker.bootstrap_servers, "--topics", json.dumps(topics)]
                sizes = ["--events", str(args.events), "--batch", str(args.batch)]
                workers = ["--routing-workers", str(args.routing_workers)]
                result = measure(role, [*common, *sizes, *workers, "--db", str(db)], __file__)
                for path in tmp.glob(f"{role}.db*"):  # gigabytes: gone before the next path
                    path.unlink()
                print(f"{role}: drained {result['events']:,} in {result['seconds']:.0f} s")
                return result

            bare_r, bridge_r = run("bare"), run("bridge")
        held = [] if args.no_hold else hold(tmp, [max(1, args.events // 10), args.events])
    ok = report(args.events, bare_r, bridge_r, held)
    if args.json:
        print(json.dumps({"bare": bare_r, "bridge": bridge_r, "held": held}, default=str))
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
