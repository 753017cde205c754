"""The bridge's HTTP endpoints over a real socket."""

from __future__ import annotations

import httpx
import pytest

from brew_bridge.errors import BridgeError
from brew_bridge.observe.metrics import Metrics
from brew_bridge.observe.server import HttpServer, build_app


async def test_health_readiness_and_metrics_over_http() -> None:
    metrics = Metrics()
    metrics.fires.labels(target="brew", route="signup", code="TRIGGERED").inc(3)
    circuit_reason: list[str | None] = [None]
    checks = {"circuit": lambda: circuit_reason[0], "consumer": lambda: None}
    server = HttpServer(build_app(metrics, checks), "127.0.0.1", 0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200

            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"ready": True})

            circuit_reason[0] = "Brew refused the API key (401 INVALID_API_KEY)"
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {
                "ready": False,
                "reasons": {"circuit": "Brew refused the API key (401 INVALID_API_KEY)"},
            }

            scrape = await http.get("/metrics")
            assert scrape.status_code == 200
            assert scrape.headers["content-type"].startswith("text/plain")
            assert (
                'brew_bridge_fires_total{code="TRIGGERED",route="signup",target="brew"} 3.0'
                in scrape.text
            )
    finally:
        await server.stop()


async def test_a_failing_check_is_not_ready_not_an_error() -> None:
    def broken() -> str | None:
        raise RuntimeError("database is locked")

    server = HttpServer(build_app(Metrics(), {"outbox": broken}), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{server.port}/readyz")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == {"outbox": "check failed: database is locked"}
    finally:
        await server.stop()


async def test_a_taken_port_says_which_setting_to_change() -> None:
    first = HttpServer(build_app(Metrics(), {}), "127.0.0.1", 0)
    await first.start()
    try:
        second = HttpServer(build_app(Metrics(), {}), "127.0.0.1", first.port)
        with pytest.raises(BridgeError, match=r"server\.port"):
            await second.start()
    finally:
        await first.stop()
