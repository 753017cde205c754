"""Status page benchmark: what one ``GET /`` costs against a large outbox.

    python bench/status_page.py [--records 100000] [--repeat 5] [--json]

Fills an outbox file (in a temp dir, ``synchronous=NORMAL``) with ``--records``
records, one in ten an ingest dead letter and the rest pending deliveries, then times
the two halves of a page: ``Outbox.overview`` (the one read transaction, run on a worker
thread by the bridge, never on its event loop) and rendering the HTML. Best of
``--repeat``. The outbox read grows with the rows (it counts them); the render does not
(the page lists 20 dead letters whatever the outbox holds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from brew_bridge.events import NewDeadLetter, NewDelivery, Reason, Routed, SourceRecord
from brew_bridge.observe.status import NEWEST_DEAD_LETTERS, StatusSnapshot, render_status
from brew_bridge.store import Outbox

_BATCH = 5000


def _fill(outbox: Outbox, records: int, now: float) -> None:
    for start in range(0, records, _BATCH):
        batch = []
        for i in range(start, min(records, start + _BATCH)):
            rec = SourceRecord("kafka", "signups", f"0:{i}", None, b'{"email": "u@example.com"}')
            if i % 10 == 0:
                dl = NewDeadLetter("ingest", Reason.MAPPING_ERROR, f"no plan for u{i}@x.io", "r")
                batch.append(Routed(record=rec, dead_letters=(dl,)))
            else:
                d = NewDelivery("r", "brew", "tri_welcome", f"k{i}", {"email": f"u{i}@x.io"})
                batch.append(Routed(record=rec, deliveries=(d,)))
        outbox.store_batch(batch, now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox.open(Path(tmp) / "outbox.db", synchronous="NORMAL")
        try:
            _fill(outbox, args.records, time.time())
            timings = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                view = outbox.overview(time.time(), newest=NEWEST_DEAD_LETTERS)
                read = time.perf_counter()
                snap = StatusSnapshot.of(
                    time.time(), view, route_targets={"r": "brew"}, lanes=[], fixes={}
                )
                page = render_status(snap)
                timings.append((read - began, time.perf_counter() - read))
        finally:
            outbox.close()
    best_read = min(t[0] for t in timings)
    best_render = min(t[1] for t in timings)
    result = {
        "records": args.records,
        "overviewMs": round(best_read * 1000, 2),
        "renderMs": round(best_render * 1000, 2),
        "pageBytes": len(page),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.records} records ({args.records // 10} dead letters): outbox read "
            f"{result['overviewMs']} ms (worker thread), render {result['renderMs']} ms, "
            f"page {result['pageBytes']} bytes"
        )


if __name__ == "__main__":
    main()
