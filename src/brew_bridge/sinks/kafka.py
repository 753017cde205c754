"""Kafka producers for the DLQ topic and the result topic.

Dead letters always live in the SQLite outbox; when ``kafka.dlq_topic`` is set they are
also published there, so teams that watch Kafka see them where they already look.
:class:`DeadLetterPublisher` drains ``Outbox.unpublished_dead_letters`` and marks a dead
letter published only after the broker acknowledged it (acks=all): at least once, a
crash in between publishes it again. Each record carries the ORIGINAL key and value (for
fire and run dead letters: the source record that produced the delivery, when it is
known) and ``brew-bridge-*`` headers saying why it died.

When ``kafka.result_topic`` is set, :class:`ResultPublisher` publishes one JSON record per
run that reached an end, keyed by the idempotency key, for services that react to
delivery outcomes. It is best effort: it never blocks or fails the poller (a lost result
is counted and logged; the outbox keeps the run's status).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)

from brew_bridge.config.sections import KafkaConfig
from brew_bridge.errors import SinkError, StoreError
from brew_bridge.events import numbered_position
from brew_bridge.observe.metrics import Metrics
from brew_bridge.store import DeadLetterRow, Outbox, RunRecord
from brew_bridge.timefmt import iso_utc

__all__ = [
    "HEADER_PREFIX",
    "DeadLetterPublisher",
    "KafkaSinks",
    "ResultPublisher",
    "RunResult",
    "dead_letter_headers",
    "dead_letter_message",
    "start_producer",
]

log = structlog.get_logger(__name__)

HEADER_PREFIX = "brew-bridge-"
_MESSAGE_HEADER_MAX = 1000  # characters of the error message carried in a header

Headers = list[tuple[str, bytes]]


async def start_producer(
    kafka: KafkaConfig, *, idempotent: bool = True, request_timeout_ms: int = 30_000
) -> AIOKafkaProducer:
    """Start a producer for the DLQ and result topics: acks=all, idempotent when possible.

    Brokers that refuse idempotent producers (InitProducerId — Tansu's memory engine,
    very old Kafka) get a plain acks=all producer and a warning: delivery stays at least
    once either way, idempotence only removes duplicates from the producer's own retries.
    ``request_timeout_ms`` bounds how long a record waits for its acknowledgement.
    Raises :class:`SinkError` when the broker cannot be reached.
    """
    if idempotent:
        producer = _producer(kafka, True, request_timeout_ms)
        try:
            await producer.start()
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            await producer.stop()
            raise SinkError(
                f"cannot reach Kafka at {kafka.bootstrap_servers} to publish: {exc!r} "
                "(check kafka.bootstrap_servers)"
            ) from exc
        except KafkaError as exc:
            await producer.stop()
            log.warning(
                "kafka_idempotent_producer_refused",
                error=repr(exc),
                fallback="acks=all without idempotence",
            )
        else:
            return producer
    producer = _producer(kafka, False, request_timeout_ms)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise SinkError(
            f"cannot start a Kafka producer for {kafka.bootstrap_servers}: {exc!r} "
            "(check kafka.bootstrap_servers)"
        ) from exc
    return producer


def _producer(kafka: KafkaConfig, idempotent: bool, request_timeout_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-publisher",
        acks="all",
        enable_idempotence=idempotent,
        request_timeout_ms=request_timeout_ms,
    )


# --- dead letters -----------------------------------------------------------------------


def dead_letter_headers(dl: DeadLetterRow) -> Headers:
    """The headers of a DLQ record: the original headers, then ``brew-bridge-*``.

    Absent values (no Brew code for an ingest dead letter, no record for a webhook
    event) are left out rather than sent empty.
    """
    ours: dict[str, str | None] = {
        "dead-letter-id": str(dl.id),
        "stage": dl.stage,
        "reason": dl.reason,
        "code": dl.code,
        "message": dl.message[:_MESSAGE_HEADER_MAX],
        "attempts": str(dl.attempts),
        "first-error-at": iso_utc(dl.first_error_at),
        "last-error-at": iso_utc(dl.last_error_at),
        "route": dl.route,
        "idempotency-key": dl.idempotency_key,
        "run-id": dl.run_id,
    }
    if dl.record is not None:
        ours["original-source"] = dl.record.source
        ours["original-stream"] = dl.record.stream
        ours["original-position"] = dl.record.position
        numbered = numbered_position(dl.record.position)
        if dl.record.source == "kafka" and numbered is not None:
            ours["original-topic"] = dl.record.stream
            ours["original-partition"] = str(numbered[0])
            ours["original-offset"] = str(numbered[1])
    original: Headers = list(dl.record.headers) if dl.record is not None else []
    return original + [
        (HEADER_PREFIX + name, value.encode()) for name, value in ours.items() if value is not None
    ]


def dead_letter_message(dl: DeadLetterRow) -> tuple[bytes | None, bytes, Headers]:
    """(key, value, headers) of the DLQ record for one dead letter.

    With the original record: its key and value byte for byte. Without one: the
    dead letter itself as JSON, keyed by the idempotency key. The header
    ``brew-bridge-value`` says which (``original`` | ``dead-letter``).
    """
    headers = dead_letter_headers(dl)
    if dl.record is not None:
        return dl.record.key, dl.record.value, [*headers, (HEADER_PREFIX + "value", b"original")]
    doc = {
        "deadLetterId": dl.id,
        "stage": dl.stage,
        "reason": dl.reason,
        "code": dl.code,
        "message": dl.message,
        "route": dl.route,
        "idempotencyKey": dl.idempotency_key,
        "runId": dl.run_id,
        "details": dl.details,
    }
    key = dl.idempotency_key.encode() if dl.idempotency_key is not None else None
    value = json.dumps(doc, separators=(",", ":"), default=str).encode()
    return key, value, [*headers, (HEADER_PREFIX + "value", b"dead-letter")]


class DeadLetterPublisher:
    """Publishes the outbox's unpublished dead letters to the DLQ topic, at least once."""

    def __init__(
        self,
        outbox: Outbox,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        metrics: Metrics | None = None,
        batch_size: int = 100,
    ) -> None:
        self._outbox = outbox
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._batch_size = batch_size
        self.failed_last = 0  # dead letters the last pass could not publish

    async def publish_pending(self) -> int:
        """Publish one batch; mark published only what the broker acknowledged.

        Returns how many were published. A record the broker refuses stays unpublished
        and is tried again on the next call (the others go on); a record that cannot
        even be handed to the producer (broker unreachable) ends the pass, so a broker
        outage costs one timeout per pass, not one per dead letter.
        """
        rows = await asyncio.to_thread(self._outbox.unpublished_dead_letters, self._batch_size)
        sent: list[tuple[DeadLetterRow, asyncio.Future[Any]]] = []
        self.failed_last = 0
        for dl in rows:
            fut = await self._send(dl)
            if fut is None:
                self.failed_last = 1
                break
            sent.append((dl, fut))
        results = await asyncio.gather(*(fut for _, fut in sent), return_exceptions=True)
        acked: list[int] = []
        for (dl, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("dlq_publish_failed", dead_letter_id=dl.id, error=repr(result))
                self.failed_last += 1
            else:
                acked.append(dl.id)
        if acked:
            await asyncio.to_thread(self._outbox.mark_published, acked)
        self._count("ok", len(acked))
        self._count("error", self.failed_last)
        return len(acked)

    async def _send(self, dl: DeadLetterRow) -> asyncio.Future[Any] | None:
        key, value, headers = dead_letter_message(dl)
        try:
            try:
                fut: asyncio.Future[Any] = await self._producer.send(
                    self._topic, value=value, key=key, headers=headers
                )
            except MessageSizeTooLargeError:
                # A too_large event cannot be republished whole; the outbox keeps the bytes
                # (`brew-bridge dlq show ID`), the topic gets the headers and an empty value.
                headers = [h for h in headers if h[0] != HEADER_PREFIX + "value"]
                headers.append((HEADER_PREFIX + "value", b"omitted"))
                headers.append((HEADER_PREFIX + "value-bytes", str(len(value)).encode()))
                fut = await self._producer.send(self._topic, value=b"", key=key, headers=headers)
        except KafkaError as exc:
            log.warning("dlq_publish_failed", dead_letter_id=dl.id, error=repr(exc))
            return None
        return fut

    async def drain(self) -> int:
        """Publish everything waiting, batch after batch, stopping at the first failure.

        For shutdown: call it after the last dead letter can have been written (the
        poller has stopped), before stopping the producer. Returns how many were published.
        """
        total = 0
        while True:
            published = await self.publish_pending()
            total += published
            if published < self._batch_size or self.failed_last:
                return total

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Publish until ``stop`` is set: drain full batches at once, then poll.

        Failures (the broker, or the outbox) back off up to 60 s instead of hammering.
        """
        delay = interval
        while not stop.is_set():
            try:
                published = await self.publish_pending()
                failed = self.failed_last
            except (KafkaError, StoreError, sqlite3.Error) as exc:
                log.warning("dlq_publish_pass_failed", error=repr(exc))
                published, failed = 0, 1
            if failed:
                delay = min(delay * 2, 60.0)
            elif published == self._batch_size:
                delay = interval
                continue  # more may be waiting
            else:
                delay = interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    def _count(self, outcome: str, n: int) -> None:
        if self._metrics is not None and n:
            self._metrics.kafka_publishes.labels(topic_kind="dlq", outcome=outcome).inc(n)


# --- run results ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run's end, as published to the result topic."""

    run_id: str
    route: str
    action: str
    idempotency_key: str
    status: str
    fired_at: float
    finished_at: float
    delivery_id: int | None = None
    event_id: str | None = None
    error: str | None = None
    target: str = "brew"
    output: dict[str, Any] | None = None

    @classmethod
    def from_run(
        cls,
        run: RunRecord,
        *,
        status: str,
        finished_at: float,
        error: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> RunResult:
        return cls(
            run_id=run.run_id,
            route=run.route,
            action=run.action,
            idempotency_key=run.idempotency_key,
            status=status,
            fired_at=run.fired_at,
            finished_at=finished_at,
            delivery_id=run.delivery_id,
            event_id=run.event_id,
            error=error,
            target=run.target,
            output=output,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "eventId": self.event_id,
            "idempotencyKey": self.idempotency_key,
            "route": self.route,
            # The record's shape predates targets: the action under Brew's name for it.
            "triggerEventId": self.action,
            "deliveryId": self.delivery_id,
            "runId": self.run_id,
            "status": self.status,
            "firedAt": iso_utc(self.fired_at),
            "finishedAt": iso_utc(self.finished_at),
            "durationSeconds": round(max(self.finished_at - self.fired_at, 0.0), 3),
            "error": self.error,
            # What the run produced, when the target says (Pinkfish's results).
            "output": self.output,
        }


class ResultPublisher:
    """Publishes each run's end to the result topic without ever holding up the caller.

    ``publish_result`` starts a background send and returns at once: a broker that is
    down costs the poller nothing. At most ``max_pending`` results wait for the broker;
    beyond that new ones are dropped (counted as ``outcome="dropped"``, logged) rather
    than growing memory without bound. ``flush`` waits for everything started.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        metrics: Metrics | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish_result(
        self,
        run: RunRecord,
        *,
        status: str,
        finished_at: float,
        error: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        """Publish one run's end (in the background). Never raises, never waits."""
        self.publish(
            RunResult.from_run(
                run, status=status, finished_at=finished_at, error=error, output=output
            )
        )

    def publish(self, result: RunResult) -> None:
        """Publish a prepared :class:`RunResult` in the background. Never raises."""
        if len(self._tasks) >= self._max_pending:
            log.warning("result_publish_dropped", run_id=result.run_id, pending=len(self._tasks))
            self._count("dropped")
            return
        task = asyncio.get_running_loop().create_task(self._send(result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, result: RunResult) -> None:
        value = json.dumps(result.to_json(), separators=(",", ":")).encode()
        headers = [
            (HEADER_PREFIX + "status", result.status.encode()),
            (HEADER_PREFIX + "route", result.route.encode()),
        ]
        try:
            fut = await self._producer.send(
                self._topic, value=value, key=result.idempotency_key.encode(), headers=headers
            )
            await fut
        except KafkaError as exc:
            log.warning("result_publish_failed", run_id=result.run_id, error=repr(exc))
            self._count("error")
        else:
            self._count("ok")

    @property
    def pending(self) -> int:
        """Results handed over and not yet answered by the broker."""
        return len(self._tasks)

    async def flush(self) -> None:
        """Wait until every result handed over has been answered (or failed)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.kafka_publishes.labels(topic_kind="result", outcome=outcome).inc()


class KafkaSinks:
    """The DLQ and result topics of one worker, over one producer."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        results: ResultPublisher | None,
        dead_letters: DeadLetterPublisher | None,
    ) -> None:
        self.producer = producer
        self.results = results
        self.dead_letters = dead_letters

    @classmethod
    async def start(cls, kafka: KafkaConfig, outbox: Outbox, metrics: Metrics) -> KafkaSinks | None:
        """The configured topics' publishers, or None when neither topic is configured."""
        if kafka.result_topic is None and kafka.dlq_topic is None:
            return None
        producer = await start_producer(kafka)
        results = (
            ResultPublisher(producer, kafka.result_topic, metrics=metrics)
            if kafka.result_topic is not None
            else None
        )
        dead_letters = (
            DeadLetterPublisher(outbox, producer, kafka.dlq_topic, metrics=metrics)
            if kafka.dlq_topic is not None
            else None
        )
        return cls(producer, results, dead_letters)

    async def stop(self) -> None:
        """Publish what is waiting (the dead letters written since the last pass, the
        results in flight), then stop the producer. What fails is published next start."""
        if self.dead_letters is not None:
            try:
                await self.dead_letters.drain()
            except Exception as exc:  # the next start publishes them; nothing is lost
                log.warning("dead letters left for the DLQ topic at stop", error=str(exc))
        if self.results is not None:
            await self.results.flush()
        await self.producer.stop()
