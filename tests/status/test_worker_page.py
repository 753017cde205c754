"""The page of an in-process worker in trouble: a revoked key opens the circuit, rows
wait; the page says which target, why and what to fix, and it still answers while
another process holds the outbox's write lock (it only reads)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from delivery_support import (
    API_KEY,
    automation,
    bridge_config,
    eventually,
    queue,
    running_worker,
    seed,
    trigger,
)
from status_support import Panels

from brew_bridge.testing.simulator import running_simulator

TRIGGERS = {"tri_welcome": trigger(automation("auto_welcome", ms=100))}
ITEMS = [
    ("welcome", "tri_welcome", f"welcome:u{i}", {"email": f"user{i}@example.com"}) for i in range(3)
]


async def test_an_open_circuit_says_what_to_fix_and_rows_wait(tmp_path: Path) -> None:
    with running_simulator(seed(TRIGGERS)) as sim:
        sim.put_key(API_KEY, {"scopes": ["all"], "revoked": True})
        config = bridge_config(tmp_path, sim, dispatcher={"auth_probe_seconds": 0.3})
        queue(config, ITEMS)
        async with running_worker(config) as worker:
            base = f"http://127.0.0.1:{worker.port}"
            async with httpx.AsyncClient(base_url=base) as http:

                async def circuit_open() -> bool:
                    doc = (await http.get("/status.json")).json()
                    return bool(doc["targets"][0]["circuit"] == "open")

                await eventually(circuit_open, what="the circuit to open")
                doc = (await http.get("/status.json")).json()
                page = (await http.get("/")).text

                # A writer holds the file's write lock: the page only reads, so it answers.
                holder = sqlite3.connect(config.outbox.path, isolation_level=None)
                try:
                    holder.execute("BEGIN IMMEDIATE")
                    locked = await http.get("/status.json", timeout=30)
                finally:
                    holder.execute("ROLLBACK")
                    holder.close()

    [brew] = doc["targets"]
    assert brew["problem"] is not None
    assert "401" in brew["problem"]
    assert "BREW_API_KEY" in brew["problem"]  # what to fix
    assert "401" in doc["fixes"]["circuit"]
    assert doc["outbox"]["deliveries"]["pending"] == len(ITEMS)
    assert doc["outbox"]["oldestPendingAgeSeconds"] is not None
    assert doc["deadLetters"]["total"] == 0

    text = Panels(page).text
    assert "open" in text["circuits"]
    assert "BREW_API_KEY" in text["circuits"]
    assert "BREW_API_KEY" in text["fixes"]
    assert "no dead letters" in text["dead-letters"]
    assert "no dead letters" in text["newest-dead-letters"]
    assert "no runs yet" in text["runs"]
    assert API_KEY not in page

    assert locked.status_code == 200
    assert locked.json()["outbox"]["deliveries"]["pending"] == len(ITEMS)
