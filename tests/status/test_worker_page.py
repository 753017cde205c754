"""The page of an in-process worker with two targets, one in trouble: Brew refuses its
revoked key (its circuit opens, its rows wait) while Pinkfish fires and one of its runs
fails. Each target gets its own circuit and budget lines; the page says which target is
refused, why and what to fix; and it still answers while another process holds the
outbox's write lock (it only reads)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
from delivery_support import (
    API_KEY,
    SCHEMA,
    automation,
    eventually,
    running_worker,
    seed,
    trigger,
)
from pinkfish_e2e_support import KEY, SEED, SOURCE, TARGET, event, pinkfish_config, routes, send
from status_support import Panels

from brew_bridge.testing.pinkfish import running_pinkfish_simulator
from brew_bridge.testing.simulator import running_simulator

TRIGGERS = {"tri_welcome": trigger(automation("auto_welcome", ms=100))}
WELCOME = {  # a Brew route on the same webhook source
    "name": "welcome",
    "trigger": "tri_welcome",
    "webhooks": [SOURCE],
    "match": {"type": "user.created"},
    "payload": {"email": "event.user.email"},
}
SIGNUPS = [
    {"id": f"signup-{i}", "type": "user.created", "user": {"email": f"new{i}@example.com"}}
    for i in range(3)
]


async def test_two_targets_one_refused_each_with_its_circuit_and_budget(tmp_path: Path) -> None:
    with (
        running_simulator(seed(TRIGGERS)) as brew,
        running_pinkfish_simulator(SEED) as pf,
    ):
        brew.put_key(API_KEY, {"scopes": ["all"], "revoked": True})
        config = pinkfish_config(
            tmp_path,
            pf,
            [WELCOME, *routes("summary", "failing")],
            brew=brew,
            triggers={"tri_welcome": {"payload_schema": SCHEMA}},
            dispatcher={"auth_probe_seconds": 0.3},
        )
        async with running_worker(config) as worker:
            await send(worker, *SIGNUPS, event("summary", 1), event("failing", 1))
            base = f"http://127.0.0.1:{worker.port}"
            async with httpx.AsyncClient(base_url=base) as http:

                async def settled() -> bool:
                    doc = (await http.get("/status.json")).json()
                    circuits = {t["target"]: t["circuit"] for t in doc["targets"]}
                    return bool(
                        circuits == {"brew": "open", TARGET: "closed"}
                        and doc["deadLetters"]["total"] == 1
                        and doc["runs"]["live"] == 0
                    )

                await eventually(settled, within=30, what="Brew refused, Pinkfish's runs ended")
                doc: dict[str, Any] = (await http.get("/status.json")).json()
                page = (await http.get("/")).text

                # A writer holds the file's write lock: the page only reads, so it answers.
                holder = sqlite3.connect(config.outbox.path, isolation_level=None)
                try:
                    holder.execute("BEGIN IMMEDIATE")
                    locked = await http.get("/status.json", timeout=30)
                finally:
                    holder.execute("ROLLBACK")
                    holder.close()

    lanes = {t["target"]: t for t in doc["targets"]}
    assert "401" in lanes["brew"]["problem"]
    assert "BREW_API_KEY" in lanes["brew"]["problem"]  # what to fix
    assert lanes[TARGET]["problem"] is None
    fire = {
        name: next(b for b in t["budgets"] if b["policy"] == "fire") for name, t in lanes.items()
    }
    # The two Pinkfish fires, while they are in its window (10 s here).
    assert 0 < fire[TARGET]["used"] <= 2
    assert fire["brew"]["used"] >= 1  # the refused fire and the probes
    assert "401" in doc["fixes"]["circuit"]
    assert doc["outbox"]["deliveries"]["pending"] == len(SIGNUPS)  # Brew's rows wait
    assert doc["outbox"]["oldestPendingAgeSeconds"] is not None
    [dead] = doc["deadLetters"]["newest"]
    assert (dead["route"], dead["target"], dead["reason"]) == ("pf-research", TARGET, "run_failed")

    text = Panels(page).text
    assert "Brew" in text["circuits"]
    assert "Pinkfish" in text["circuits"]
    assert "open" in text["circuits"]
    assert "BREW_API_KEY" in text["fixes"]
    assert "Pinkfish" in text["budgets"]
    assert "pf-research" in text["newest-dead-letters"]
    for secret in (API_KEY, KEY, *(s["user"]["email"] for s in SIGNUPS), "failing1@example.com"):
        assert secret not in page

    assert locked.status_code == 200
    assert locked.json()["outbox"]["deliveries"]["pending"] == len(SIGNUPS)
