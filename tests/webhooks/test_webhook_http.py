"""The webhook source over real HTTP: a real worker, the Brew simulator, an outbox file.

Each delivery is signed by its provider's own code (webhook_support); what a 2xx
promises is checked by opening the outbox file right after the answer, without waiting.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlite_utils
import structlog
from delivery_support import (
    API_KEY,
    automation,
    eventually,
    fires_by_key,
    metric,
    parse_metrics,
    running_worker,
    seed,
    sim_runs_by_email,
    trigger,
)
from webhook_support import (
    GITHUB_SECRET,
    PROVIDER_ENV,
    STRIPE_OLD_SECRET,
    STRIPE_SECRET,
    SVIX_SECRET,
    body_of,
    github_headers,
    shopify_headers,
    stripe_headers,
    svix_headers,
    webhook_bridge_data,
)

from brew_bridge.config import BridgeConfig, config_from_mapping
from brew_bridge.errors import ConfigError
from brew_bridge.testing.simulator import SimulatorHandle, running_simulator
from brew_bridge.worker import Worker

TRIGGERS = {"tri_welcome": trigger(automation("welcome", ms=50))}


def customer_created(event_id: str, email: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1", "object": "customer", "email": email}},
    }


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator(seed(TRIGGERS)) as handle:
        yield handle


def make_config(tmp_path: Path, brew_url: str, **kw: Any) -> BridgeConfig:
    env = {"BREW_API_KEY": API_KEY, **PROVIDER_ENV, **kw.pop("env", {})}
    data = webhook_bridge_data(str(tmp_path / "outbox.db"), brew_url, API_KEY, **kw)
    return config_from_mapping(data, env=env)


@asynccontextmanager
async def bridge(config: BridgeConfig) -> AsyncIterator[tuple[Worker, httpx.AsyncClient]]:
    async with running_worker(config) as worker:
        base = f"http://127.0.0.1:{worker.webhook_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield worker, http


def table(config: BridgeConfig, name: str) -> list[dict[str, Any]]:
    db = sqlite_utils.Database(config.outbox.path)
    try:
        return list(db[name].rows)
    finally:
        db.close()


async def post(
    http: httpx.AsyncClient, source: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(f"/webhooks/{source}", content=body, headers=headers)


async def metrics_of(worker: Worker) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        return parse_metrics((await http.get(f"http://127.0.0.1:{worker.port}/metrics")).text)


async def test_a_verified_delivery_is_in_the_outbox_before_its_2xx_and_a_replay_fires_once(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url)
    body = body_of(customer_created("evt_replayed", "ada@example.com"))
    async with bridge(config) as (worker, http):
        first = await post(http, "stripe", body, stripe_headers(body))
        assert first.status_code == 200, first.text
        assert first.json() == {"stored": True, "id": "evt_replayed"}
        # The 200 means durable: the delivery is in the file now, not "soon".
        [row] = table(config, "deliveries")
        assert row["route"] == "stripe-welcome"
        assert row["idempotency_key"] == "stripe-welcome:evt_replayed"
        # Stripe retries the same event (a new signature, the same id): stored once.
        for _ in range(2):
            again = await post(http, "stripe", body, stripe_headers(body))
            assert again.status_code == 200
        assert len(table(config, "deliveries")) == 1
        assert len(table(config, "records")) == 1
        await eventually(
            lambda: "stripe-welcome:evt_replayed" in fires_by_key(sim), what="the fire"
        )
        values = await metrics_of(worker)
    assert sim_runs_by_email(sim) == {"ada@example.com": 1}
    assert (
        metric(values, "brew_bridge_webhook_requests_total", source="stripe", outcome="stored") == 3
    )
    assert metric(values, "brew_bridge_events_duplicate_total", source="webhook") == 2


async def test_every_provider_routes_on_its_own_type_and_keys_on_its_delivery_id(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url)
    clerk = body_of(
        {
            "type": "user.created",
            "object": "event",
            "data": {
                "id": "user_1",
                "first_name": "Grace",
                "primary_email_address_id": "idn_2",
                "email_addresses": [
                    {"id": "idn_1", "email_address": "old@example.com"},
                    {"id": "idn_2", "email_address": "grace@example.com"},
                ],
            },
        }
    )
    shop = body_of({"id": 706405506930370084, "email": "bob@example.com"})
    star = body_of({"action": "created", "sender": {"login": "octo", "email": "octo@example.com"}})
    async with bridge(config) as (_worker, http):
        answers = [
            await post(http, "clerk", clerk, svix_headers(clerk, "msg_2Ld9")),
            await post(
                http, "shop", shop, shopify_headers(shop, "b54557e4-bdd9", "customers/create")
            ),
            await post(http, "gh", star, github_headers(star, "72d3162e-cc78", "star")),
            # The same GitHub delivery id on another event type matches no route.
            await post(http, "gh", star, github_headers(star, "0b7f-issues", "issues")),
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 200]
        deliveries = {row["route"]: row for row in table(config, "deliveries")}
        records = {
            row["stream"]: row for row in table(config, "records") if row["stream"] == "shop"
        }
        dead = table(config, "dead_letters")
    assert {route: row["idempotency_key"] for route, row in deliveries.items()} == {
        "clerk-welcome": "clerk-welcome:msg_2Ld9",
        "shop-welcome": "shop-welcome:b54557e4-bdd9",
        "github-star": "github-star:72d3162e-cc78",
    }
    # Clerk's primary address, not the first one.
    assert json.loads(deliveries["clerk-welcome"]["payload"]) == {
        "email": "grace@example.com",
        "firstName": "Grace",
    }
    kept = {name for name, _ in json.loads(records["shop"]["headers"])}
    assert {"x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id"} <= kept
    assert "x-shopify-hmac-sha256" not in kept
    assert [d["reason"] for d in dead] == ["no_route"]


@pytest.mark.parametrize(
    ("headers_of", "outcome"),
    [
        (lambda body: stripe_headers(body, secret="whsec_not_ours_0123456789"), "bad_signature"),
        (lambda body: {"Content-Type": "application/json"}, "missing_signature"),
        (lambda body: stripe_headers(body, at=time.time() - 400), "stale_timestamp"),
        (lambda body: stripe_headers(body, at=time.time() + 400), "future_timestamp"),
        (lambda body: stripe_headers(body + b" "), "bad_signature"),
    ],
)
async def test_refusals_are_401_counted_never_stored_and_never_logged(
    tmp_path: Path, sim: SimulatorHandle, headers_of: Any, outcome: str
) -> None:
    config = make_config(tmp_path, sim.base_url)
    body = body_of(customer_created("evt_forged", "mallory-secret-address@example.com"))
    async with bridge(config) as (worker, http):
        with structlog.testing.capture_logs() as logs:
            answer = await post(http, "stripe", body, headers_of(body))
        values = await metrics_of(worker)
    assert answer.status_code == 401
    assert "signature refused" in answer.json()["error"]
    assert table(config, "records") == []
    assert table(config, "deliveries") == []
    assert (
        metric(values, "brew_bridge_webhook_requests_total", source="stripe", outcome=outcome) == 1
    )
    text = json.dumps(logs, default=str)
    assert "webhook_refused" in text
    assert STRIPE_SECRET not in text
    assert "mallory-secret-address" not in text
    assert STRIPE_SECRET not in answer.text


async def test_old_and_new_secrets_are_both_accepted_during_a_rotation(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    sources = {
        "stripe": {
            "scheme": "stripe",
            "secrets": [{"env": "STRIPE_SECRET"}, {"file": str(tmp_path / "stripe-old")}],
        }
    }
    (tmp_path / "stripe-old").write_text(STRIPE_OLD_SECRET + "\n")
    config = make_config(tmp_path, sim.base_url, sources=sources, routes=[_stripe_route()])
    async with bridge(config) as (_worker, http):
        for index, secret in enumerate((STRIPE_OLD_SECRET, STRIPE_SECRET)):
            body = body_of(customer_created(f"evt_rot_{index}", f"r{index}@example.com"))
            answer = await post(http, "stripe", body, stripe_headers(body, secret=secret))
            assert answer.status_code == 200, answer.text
    assert len(table(config, "deliveries")) == 2


def _stripe_route() -> dict[str, Any]:
    return {
        "name": "stripe-welcome",
        "webhooks": ["stripe"],
        "match": {"type": "customer.created"},
        "trigger": "tri_welcome",
        "payload": {"email": "event.data.object.email"},
    }


@pytest.mark.parametrize(("offset", "status"), [(-295, 200), (295, 200), (-305, 401), (305, 401)])
async def test_clock_skew_near_both_edges_of_the_tolerance(
    tmp_path: Path, sim: SimulatorHandle, offset: int, status: int
) -> None:
    config = make_config(tmp_path, sim.base_url)
    body = body_of(customer_created(f"evt_skew_{offset}", "skew@example.com"))
    clerk = body_of({"type": "user.created", "data": {"email_addresses": []}})
    async with bridge(config) as (_worker, http):
        stripe = await post(http, "stripe", body, stripe_headers(body, at=time.time() + offset))
        svix = await post(
            http, "clerk", clerk, svix_headers(clerk, f"msg_{offset}", at=time.time() + offset)
        )
    assert (stripe.status_code, svix.status_code) == (status, status)


async def test_a_signed_body_that_is_not_json_is_400_and_a_dead_letter(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url)
    body = b"event=customer.created&email=x"
    async with bridge(config) as (_worker, http):
        answer = await post(http, "stripe", body, stripe_headers(body))
    assert answer.status_code == 400
    assert answer.json()["dead_letter"] is True
    [dead] = table(config, "dead_letters")
    assert dead["reason"] == "invalid_json"
    [record] = table(config, "records")
    assert record["value"] == body  # byte for byte, for a redrive
    assert record["position"].startswith("sha256:")


async def test_unknown_source_is_404_and_only_post_is_served(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url)
    async with bridge(config) as (worker, http):
        assert (await post(http, "nope", b"{}", {})).status_code == 404
        assert (await http.get("/webhooks/stripe")).status_code == 405
        values = await metrics_of(worker)
    assert metric(values, "brew_bridge_webhook_requests_total", source="(unknown)") == 1


async def status_line(port: int, *parts: bytes) -> bytes:
    """Send raw request bytes on a fresh connection; the answer's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()


async def test_a_declared_oversized_body_is_413_before_it_is_sent(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url, webhooks={"max_body_bytes": 1000})
    async with running_worker(config) as worker:
        # Not one byte of the body is sent: the answer comes anyway.
        status = await status_line(
            worker.webhook_port,
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
        )
    assert status.startswith(b"HTTP/1.1 413")
    assert table(config, "records") == []


async def test_a_chunked_body_is_cut_off_at_the_limit_while_it_is_read(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url, webhooks={"max_body_bytes": 1000})
    async with running_worker(config) as worker:
        chunk = b"%x\r\n%s\r\n" % (600, b"x" * 600)
        status = await status_line(
            worker.webhook_port,
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            # 1200 bytes: over the limit; the chunked body never ends
            chunk,
            chunk,
        )
    assert status.startswith(b"HTTP/1.1 413")
    assert table(config, "records") == []


async def test_a_body_cut_mid_request_stores_nothing(tmp_path: Path, sim: SimulatorHandle) -> None:
    config = make_config(tmp_path, sim.base_url)
    body = body_of(customer_created("evt_cut", "cut@example.com"))
    headers = stripe_headers(body)
    async with running_worker(config) as worker:
        _reader, writer = await asyncio.open_connection("127.0.0.1", worker.webhook_port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n".encode()
            + body[: len(body) // 2]
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        async def aborted() -> bool:
            values = await metrics_of(worker)
            return metric(values, "brew_bridge_webhook_requests_total", outcome="aborted") == 1

        await eventually(aborted, what="the cut request to be counted")
    assert table(config, "records") == []


async def test_a_sender_that_never_finishes_gets_408(tmp_path: Path, sim: SimulatorHandle) -> None:
    config = make_config(tmp_path, sim.base_url, webhooks={"read_timeout_seconds": 0.5})
    async with running_worker(config) as worker:
        status = await status_line(
            worker.webhook_port,
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        )
    assert status.startswith(b"HTTP/1.1 408")
    assert table(config, "records") == []


async def test_a_hundred_concurrent_senders_all_land_once(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url)
    bodies = [body_of(customer_created(f"evt_c{i}", f"c{i}@example.com")) for i in range(100)]
    async with bridge(config) as (worker, http):
        # Each event twice, all at once: concurrent duplicates share transactions.
        answers = await asyncio.gather(
            *(post(http, "stripe", b, stripe_headers(b)) for b in bodies + bodies)
        )
        assert {a.status_code for a in answers} == {200}
        assert len(table(config, "deliveries")) == 100
        assert len(table(config, "records")) == 100
        values = await metrics_of(worker)
    assert metric(values, "brew_bridge_events_routed_total", source="webhook") == 100
    assert metric(values, "brew_bridge_events_duplicate_total", source="webhook") == 100


async def test_above_the_high_water_mark_the_answer_is_503_with_retry_after(
    tmp_path: Path,
) -> None:
    # Brew unreachable: what is queued stays queued.
    config = make_config(
        tmp_path,
        "http://127.0.0.1:9/api",
        routes=[_stripe_route()],
        outbox_settings={"high_water": 2, "low_water": 1},
        webhooks={"retry_after_seconds": 7},
    )
    async with bridge(config) as (worker, http):
        statuses = []
        for i in range(4):
            body = body_of(customer_created(f"evt_hw{i}", f"hw{i}@example.com"))
            answer = await post(http, "stripe", body, stripe_headers(body))
            statuses.append(answer.status_code)
        values = await metrics_of(worker)
    assert statuses[:2] == [200, 200]
    assert statuses[2:] == [503, 503]
    assert answer.headers["Retry-After"] == "7"
    assert len(table(config, "deliveries")) == 2
    assert metric(values, "brew_bridge_webhook_requests_total", outcome="backpressure") == 2


@pytest.mark.slow
async def test_an_outbox_that_cannot_be_written_is_503_and_nothing_is_acknowledged(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url, routes=[_stripe_route()])
    body = body_of(customer_created("evt_locked", "locked@example.com"))
    async with bridge(config) as (_worker, http):
        blocker = sqlite_utils.Database(config.outbox.path)
        blocker.conn.execute("BEGIN EXCLUSIVE")
        try:
            # Each outbox call waits out its 5 s busy timeout first (on the loop, for now).
            answer = await http.post(
                "/webhooks/stripe", content=body, headers=stripe_headers(body), timeout=60
            )
        finally:
            blocker.conn.rollback()
            blocker.close()
        assert answer.status_code == 503
        assert "Retry-After" in answer.headers
        # The provider's retry lands once the outbox is back.
        again = await post(http, "stripe", body, stripe_headers(body))
        assert again.status_code == 200
    assert len(table(config, "deliveries")) == 1


async def test_an_unsigned_source_is_written_out_and_warned_about_on_readyz(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    sources = {"app": {"scheme": "none", "id_header": "X-Event-Id"}}
    route = {**_stripe_route(), "name": "app-welcome", "webhooks": ["app"]}
    config = make_config(tmp_path, sim.base_url, sources=sources, routes=[route])
    body = body_of(customer_created("ignored", "app@example.com"))
    async with bridge(config) as (worker, http):
        answer = await post(http, "app", body, {"X-Event-Id": "app-1"})
        async with httpx.AsyncClient() as plain:
            ready = (await plain.get(f"http://127.0.0.1:{worker.port}/readyz")).json()
    assert answer.status_code == 200
    assert ready["ready"] is True
    assert "app" in ready["warnings"]["webhooks"]
    [row] = table(config, "deliveries")
    assert row["idempotency_key"] == "app-welcome:app-1"


async def test_webhooks_may_have_a_port_of_their_own(tmp_path: Path, sim: SimulatorHandle) -> None:
    config = make_config(tmp_path, sim.base_url, webhooks={"port": 0}, routes=[_stripe_route()])
    body = body_of(customer_created("evt_port", "port@example.com"))
    async with bridge(config) as (worker, http):
        assert worker.webhook_port != worker.port
        assert (await post(http, "stripe", body, stripe_headers(body))).status_code == 200
        # The public port serves webhooks only; the metrics stay on the private one.
        assert (await http.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as plain:
            metrics = await plain.get(f"http://127.0.0.1:{worker.port}/metrics")
            hooks = await plain.post(f"http://127.0.0.1:{worker.port}/webhooks/stripe")
    assert metrics.status_code == 200
    assert hooks.status_code == 404


def test_github_secret_and_svix_secret_stay_out_of_the_config_dump(tmp_path: Path) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9/api")
    dumped = config.model_dump_json()
    assert GITHUB_SECRET not in dumped
    assert SVIX_SECRET not in dumped
    assert GITHUB_SECRET not in repr(config)


def test_the_worker_refuses_to_start_without_a_named_secret(tmp_path: Path) -> None:
    data = webhook_bridge_data(str(tmp_path / "outbox.db"), "http://127.0.0.1:9/api", API_KEY)
    config = config_from_mapping(data, env={"BREW_API_KEY": API_KEY})  # check and map: fine
    with pytest.raises(ConfigError) as caught:
        Worker(config, consume=False, env={})
    assert {p.key_path for p in caught.value.problems} == {
        "STRIPE_SECRET",
        "SVIX_SECRET",
        "SHOPIFY_SECRET",
        "GITHUB_SECRET",
    }


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@pytest.mark.slow
async def test_a_lock_held_by_another_process_stalls_the_store_and_nothing_else(
    tmp_path: Path, sim: SimulatorHandle
) -> None:
    config = make_config(tmp_path, sim.base_url, routes=[_stripe_route()])
    body = body_of(customer_created("evt_lock_wait", "wait@example.com"))
    async with bridge(config) as (worker, http):
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, config.outbox.path, "3", stdout=asyncio.subprocess.PIPE
        )
        try:
            assert locker.stdout is not None
            assert (await locker.stdout.readline()).strip() == b"locked"
            # A delivery waits for the lock (under the 5 s busy timeout) ...
            waiting = asyncio.create_task(post(http, "stripe", body, stripe_headers(body)))
            # ... and meanwhile the loop answers at once: the outbox is off it.
            async with httpx.AsyncClient() as plain:
                for _ in range(10):
                    began = time.monotonic()
                    health = await plain.get(f"http://127.0.0.1:{worker.port}/healthz")
                    assert health.status_code == 200
                    assert time.monotonic() - began < 0.5
            assert not waiting.done()
            answer = await waiting
        finally:
            await locker.wait()
    assert answer.status_code == 200
    assert len(table(config, "deliveries")) == 1
