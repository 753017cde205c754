"""Webhook benchmark: verified Stripe deliveries per second into the outbox, beside a bare handler.

    python bench/webhooks.py [--requests 3000] [--concurrency 50] [--rounds 3] [--json]

Two servers, each in its own process, take the same pre-signed Stripe deliveries from a
load generator in this process (raw HTTP/1.1 keep-alive connections on loopback, so the
generator is not what limits):

* **bridge**: ``brew-bridge``'s worker with one Stripe webhook source and one route, the
  outbox on disk with ``synchronous: FULL``; Brew's fire budget is shut so the
  dispatcher stays out of the way (this measures intake, not delivery);
* **bare**: a Starlette handler that only checks the Stripe signature and
  ``executemany``s the body into SQLite (WAL, ``synchronous=FULL``), one commit per request.

Rounds alternate bare / bridge (the machine is shared and noisy); medians are printed:
requests/s, p50 and p99 latency, the ratio bridge/bare, and the rows each stored.
Targets on this machine: >= 1,000 verified requests/s and >= 0.7 of the bare handler.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from brew_bridge.testing.kafka import free_port

SECRET = "whsec_bench_secret_0123456789abcdef"  # noqa: S105 (a benchmark's own)
SCHEMA = {"type": "object", "fields": [{"key": "email", "type": "string", "required": True}]}


def _signed(index: int, run: str) -> bytes:
    """One whole HTTP/1.1 request: a ~1 KB Stripe event, signed now."""
    event = {
        "id": f"evt_{run}_{index}",
        "object": "event",
        "type": "customer.created",
        "data": {
            "object": {
                "id": f"cus_{index}",
                "email": f"user{index}@example.com",
                "metadata": {"note": "x" * 800},
            }
        },
    }
    body = json.dumps(event).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    head = (
        "POST /webhooks/stripe HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Stripe-Signature: t={stamp},v1={digest}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(port: int, count: int, concurrency: int, run: str) -> dict[str, Any]:
    requests = [_signed(i, run) for i in range(count)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    began = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(port, requests[i::concurrency], latencies, statuses)
            for i in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": count / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,
    }


# -- the two servers (each run as a child: python bench/webhooks.py --serve ...) ---------


def _bare_app(db_path: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body BLOB)")
    key = SECRET.encode()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        parts = dict(p.split("=", 1) for p in request.headers["stripe-signature"].split(","))
        expected = hmac.new(key, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        event_id = json.loads(body)["id"]
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", [(event_id, body)])
        conn.execute("COMMIT")
        return JSONResponse({"stored": True, "id": event_id})

    return Starlette(routes=[Route("/webhooks/stripe", receive, methods=["POST"])])


def _serve_bare(port: int, db_path: str) -> None:
    import uvicorn

    uvicorn.run(_bare_app(db_path), host="127.0.0.1", port=port, log_level="warning")


def _serve_bridge(config_path: str) -> None:
    from brew_bridge.config import load_config
    from brew_bridge.observe.logs import configure_logging
    from brew_bridge.worker import Worker

    configure_logging("WARNING", "json")
    config = load_config(config_path, env={"BREW_API_KEY": "brew_bench", "BENCH_SECRET": SECRET})

    async def main() -> None:
        await Worker(config, consume=False, env={}).run(asyncio.Event())

    asyncio.run(main())


def _bridge_config(workdir: Path, port: int, brew_port: int) -> Path:
    data = {
        "outbox": {"path": str(workdir / "bridge.db"), "synchronous": "FULL"},
        # A Brew that takes the connection and never answers: one fire hangs, the
        # dispatcher waits (this measures the intake, not delivery).
        "brew": {"base_url": f"http://127.0.0.1:{brew_port}/api", "timeout_seconds": 60},
        "dispatcher": {"concurrency": 1},
        "server": {"host": "127.0.0.1", "port": port},
        "webhooks": {
            "sources": {"stripe": {"scheme": "stripe", "secrets": [{"env": "BENCH_SECRET"}]}}
        },
        "triggers": {"tri_bench": {"payload_schema": SCHEMA}},
        "routes": [
            {
                "name": "stripe-bench",
                "webhooks": ["stripe"],
                "match": {"type": "customer.created"},
                "trigger": "tri_bench",
                "payload": {"email": "event.data.object.email"},
            }
        ],
    }
    path = workdir / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_up(port: int, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"server exited with {child.returncode}")
        try:
            httpx.post(f"http://127.0.0.1:{port}/webhooks/none", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        return
    raise SystemExit("server did not start")


def _rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()


def _round(kind: str, args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-webhooks-{kind}-", dir=args.dir))
    port = free_port()
    if kind == "bare":
        command = ["--serve-bare", str(port), str(workdir / "bare.db")]
    else:
        command = ["--serve-bridge", str(_bridge_config(workdir, port, args.silent_port))]
    child = subprocess.Popen([sys.executable, __file__, *command])
    try:
        _wait_up(port, child)
        if args.profile and kind == "bridge":
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(child.pid),
                    "-o",
                    args.profile,
                    "-f",
                    "raw",
                    "-r",
                    "200",
                ]
            )
        result = asyncio.run(_load(port, args.requests, args.concurrency, f"{kind}{round_no}"))
    finally:
        if args.profile and kind == "bridge":
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait()
        child.terminate()
        child.wait(timeout=30)
    if kind == "bare":
        result["rows"] = _rows(workdir / "bare.db", "events")
    else:
        result["rows"] = _rows(workdir / "bridge.db", "deliveries")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the databases go (default: /tmp)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", help="py-spy raw profile of the bridge to this file")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bridge", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        _serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return
    if args.serve_bridge:
        _serve_bridge(args.serve_bridge)
        return

    silent = socket.socket()  # listens, never accepts: the Brew that never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    args.silent_port = silent.getsockname()[1]
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "bridge": []}
    for round_no in range(args.rounds):
        for kind in ("bare", "bridge"):
            results[kind].append(_round(kind, args, round_no))

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    summary = {
        kind: {key: median(kind, key) for key in ("rps", "p50_ms", "p99_ms")} for kind in results
    }
    summary["ratio"] = summary["bridge"]["rps"] / summary["bare"]["rps"]  # type: ignore[assignment]
    ok = all(r["statuses"] == {200: args.requests} for rs in results.values() for r in rs)
    stored = all(r["rows"] == args.requests for rs in results.values() for r in rs)
    if args.json:
        print(
            json.dumps({"summary": summary, "rounds": results, "all_200": ok, "all_stored": stored})
        )
        return
    print(
        f"{args.requests} verified Stripe deliveries x {args.rounds} rounds, "
        f"{args.concurrency} connections (medians)"
    )
    for kind in ("bare", "bridge"):
        s = summary[kind]
        print(
            f"  {kind:<6} {s['rps']:8.0f} req/s   "
            f"p50 {s['p50_ms']:6.1f} ms   p99 {s['p99_ms']:6.1f} ms"
        )
    print(f"  ratio bridge/bare {summary['ratio']:.2f}   (targets: >= 1000 req/s, >= 0.7)")
    print(f"  every answer 200: {ok}; every delivery stored: {stored}")


if __name__ == "__main__":
    main()
