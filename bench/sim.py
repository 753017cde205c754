"""How many fires per second the Brew simulator serves, and at what latency.

The simulator must never be what bounds a benchmark of the bridge, so this drives its
hottest route — ``POST …/fire`` with a fresh ``Idempotency-Key`` each time, as the
bridge sends it — and reports fires/s with p50/p99 latency. The simulator runs in its
own process (one uvicorn worker, rate limits lifted, like ``brew-bridge sim``), so the
load generator does not share its GIL; the load comes from ``--clients`` processes, each
with ``--concurrency`` keep-alive connections. Bounded by ``--seconds`` and
``--max-fires``.

Two load generators: ``--client raw`` (default) writes HTTP/1.1 on asyncio streams and
costs a few tens of microseconds per request, so the number measures the simulator;
``--client httpx`` uses ``httpx.AsyncClient``, which on a small machine spends more CPU
per request than the simulator does, so it measures httpx as much as the server.

    python bench/sim.py [--seconds 5] [--client raw|httpx] [--clients 1] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SEED = """
limits:
  automation.runs.write: {limit: 1000000000, windowSeconds: 1}
  automation.runs.read: {limit: 1000000000, windowSeconds: 1}
requestLogSize: 20000
triggers:
  tri_bench:
    title: Benchmark
    payloadSchema:
      type: object
      fields:
        - {key: email, type: string, required: true}
        - {key: firstName, type: string, required: false}
        - {key: plan, type: string, required: false, fallbackValue: free}
    automations:
      - {automationId: auto_bench, name: Bench, durationMs: 1000}
"""
_URL = re.compile(r"at (http://\S+/api)")


_FIRE_PATH = "/api/v1/automations/triggers/tri_bench/fire"


def _body(n: int) -> bytes:
    return json.dumps({"payload": {"email": f"user{n}@example.com", "firstName": "Bench"}}).encode()


async def _drive_raw(
    base_url: str, seconds: float, max_fires: int, concurrency: int, tag: str
) -> tuple[int, int, list[float]]:
    """Fire over raw keep-alive HTTP/1.1 connections; (ok, failed, latencies in seconds)."""
    host, _, port = base_url.removeprefix("http://").removesuffix("/api").partition(":")
    latencies: list[float] = []
    failed = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal failed, counter
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while counter < max_fires and time.perf_counter() < deadline:
                counter += 1
                body = _body(counter)
                head = (
                    f"POST {_FIRE_PATH} HTTP/1.1\r\nHost: {host}\r\n"
                    "Authorization: Bearer brew_bench\r\nContent-Type: application/json\r\n"
                    f"Idempotency-Key: bench-{tag}-{counter}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                started = time.perf_counter()
                writer.write(head.encode() + body)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in status_and_headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not status_and_headers.startswith(b"HTTP/1.1 200"):
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return len(latencies) - failed, failed, latencies


async def _drive_httpx(
    base_url: str, seconds: float, max_fires: int, concurrency: int, tag: str
) -> tuple[int, int, list[float]]:
    """Fire with ``httpx.AsyncClient``; (ok, failed, latencies in seconds)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failed = 0
    counter = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=10.0,
        headers={"Authorization": "Bearer brew_bench"},
    ) as client:

        async def worker() -> None:
            nonlocal failed, counter
            while counter < max_fires and time.perf_counter() < deadline:
                counter += 1
                n = counter
                started = time.perf_counter()
                response = await client.post(
                    _FIRE_PATH.removeprefix("/api"),
                    content=_body(n),
                    headers={"Idempotency-Key": f"bench-{tag}-{n}", "Content-Type": _JSON},
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) - failed, failed, latencies


_JSON = "application/json"
_DRIVERS = {"raw": _drive_raw, "httpx": _drive_httpx}


def _client_process(
    args: tuple[str, str, float, int, int, str],
) -> tuple[int, int, list[float]]:
    client, *rest = args
    return asyncio.run(_DRIVERS[client](*rest))  # type: ignore[arg-type]


def _start_simulator(seed_file: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "brew_bridge.cli.sim", "--port", "0", "--seed", str(seed_file)],
        # The simulator alone: `brew-bridge sim` would load every other command too.
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = _URL.search(line)
    if match is None:
        process.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return process, match[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-fires", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=1, help="load-generating processes")
    parser.add_argument("--concurrency", type=int, default=32, help="connections per client")
    parser.add_argument("--client", choices=sorted(_DRIVERS), default="raw")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        seed_file = Path(tmp) / "seed.yaml"
        seed_file.write_text(SEED)
        process, base_url = _start_simulator(seed_file)
        try:
            # Warm up (imports, first connections) outside the measured window.
            _client_process((args.client, base_url, 1.0, 200, 4, f"{os.getpid()}-warm"))
            per_client = max(1, args.max_fires // args.clients)
            jobs = [
                (
                    args.client,
                    base_url,
                    args.seconds,
                    per_client,
                    args.concurrency,
                    f"{os.getpid()}-{i}",
                )
                for i in range(args.clients)
            ]
            started = time.perf_counter()
            if args.clients == 1:
                results = [_client_process(jobs[0])]
            else:
                with multiprocessing.Pool(args.clients) as pool:
                    results = pool.map(_client_process, jobs)
            elapsed = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=10)

    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    summary = {
        "fires": ok,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "fires_per_second": round(ok / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "client": args.client,
        "clients": args.clients,
        "concurrency": args.concurrency,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"simulator: {summary['fires_per_second']} fires/s "
            f"({ok} ok, {failed} failed in {summary['seconds']} s; "
            f"{args.clients} {args.client} client process(es) x {args.concurrency} connections), "
            f"latency p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
        )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
