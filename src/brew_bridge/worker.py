"""The worker: the Kafka source, the dispatcher, the poller and the HTTP server in one process.

:class:`Worker` assembles the parts from a :class:`~brew_bridge.config.BridgeConfig`
and runs them in one event loop until asked to stop. Stopping is graceful and
ordered: the source commits what is durable and leaves the group, the dispatcher lets
its fires in flight finish (or releases their rows), the poller ends its cycle, the
publishers flush, and the outbox closes last.

``once=True`` (``brew-bridge run --once``) is the batch mode for tests and jobs: the
source reads until it has caught up with the end offsets it saw, then the worker waits
until every queued delivery is fired or dead and every run is at an end, and returns a
:class:`RunSummary`. With ``consume=False`` no Kafka consumer starts: the worker only
delivers what the outbox already holds (draining an outbox, tests without a broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from brew_bridge.config import API_KEY_ENV, API_KEY_FILE_ENV, BridgeConfig
from brew_bridge.core.circuit import Circuit
from brew_bridge.core.dispatcher import AuthGate, Dispatcher
from brew_bridge.core.poller import Poller
from brew_bridge.core.ratelimit import RateBudgets
from brew_bridge.errors import BridgeError, ConfigError, ConfigProblem
from brew_bridge.events import SourceRecord
from brew_bridge.observe.metrics import Metrics
from brew_bridge.observe.server import HttpServer, build_app
from brew_bridge.sources.kafka.source import IngestObserver, KafkaSource
from brew_bridge.store.outbox import Outbox, PruneResult, StoreResult
from brew_bridge.targets.brew.client import BrewClient, build_http_client

__all__ = ["ApiKeySource", "RunSummary", "Worker"]

log = structlog.get_logger(__name__)

_STATS_INTERVAL = 5.0  # seconds between refreshes of the outbox gauges
_PRUNE_INTERVAL = 3600.0  # seconds between prunes of finished work (outbox.retention_seconds)
_DONE_CHECK_INTERVAL = 0.1  # --once: how often to look whether everything has ended


class ApiKeySource:
    """The Brew API key, read fresh enough that a rotated key is picked up without a restart.

    Same precedence as :func:`~brew_bridge.config.load_config`: ``BREW_API_KEY``, else the
    file named by ``BREW_API_KEY_FILE`` or ``brew.api_key_file``. The file is re-read when
    it changes (its mtime or size), so a remounted Kubernetes secret takes effect at the
    next request, in particular at the next probe of an open auth circuit.
    """

    def __init__(self, config: BridgeConfig, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self._env_key = (environ.get(API_KEY_ENV) or "").strip() or None
        file = environ.get(API_KEY_FILE_ENV) or config.brew.api_key_file
        self._path = Path(file) if file and self._env_key is None else None
        loaded = config.brew.api_key
        self._cached = loaded.get_secret_value() if loaded is not None else None
        self._stamp: tuple[int, int] | None = None
        if self._env_key is None and self._path is None and self._cached is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        "environment",
                        API_KEY_ENV,
                        "no Brew API key: the worker cannot call Brew without one",
                        f"set {API_KEY_ENV}, or {API_KEY_FILE_ENV} / brew.api_key_file "
                        "to a file holding the key",
                    )
                ]
            )

    def __call__(self) -> str:
        if self._env_key is not None:
            return self._env_key
        if self._path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                st = self._path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp != self._stamp:
                    text = self._path.read_text(encoding="utf-8").strip()
                    if text:
                        self._cached = text
                    self._stamp = stamp
        return self._cached or ""


@dataclass
class RunSummary:
    """What ``--once`` prints: this process's counts, from its metrics."""

    events_consumed: int = 0
    events_routed: int = 0
    events_duplicate: int = 0
    events_dropped: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason
    fires: dict[str, int] = field(default_factory=dict)  # by code
    runs: dict[str, int] = field(default_factory=dict)  # by terminal status
    elapsed_seconds: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Metrics, elapsed: float) -> RunSummary:
        def total(name: str) -> int:
            return int(sum(_samples(metrics, name).values()))

        def by(name: str, label: str) -> dict[str, int]:
            counts: dict[str, int] = {}
            for labels, value in _samples(metrics, name).items():
                key = dict(labels)[label]
                counts[key] = counts.get(key, 0) + int(value)
            return {k: v for k, v in sorted(counts.items()) if v}

        return cls(
            events_consumed=total("brew_bridge_events_consumed_total"),
            events_routed=total("brew_bridge_events_routed_total"),
            events_duplicate=total("brew_bridge_events_duplicate_total"),
            events_dropped=total("brew_bridge_events_dropped_total"),
            dead_letters=by("brew_bridge_dead_letters_total", "reason"),
            fires=by("brew_bridge_fires_total", "code"),
            runs=by("brew_bridge_runs_terminal_total", "status"),
            elapsed_seconds=round(elapsed, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "events": {
                "consumed": self.events_consumed,
                "routed": self.events_routed,
                "duplicate": self.events_duplicate,
                "dropped": self.events_dropped,
            },
            "dead_letters": self.dead_letters,
            "fires": self.fires,
            "runs": self.runs,
            "elapsed_seconds": self.elapsed_seconds,
        }


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


class _WakeDispatcher(IngestObserver):
    """New deliveries stored: the dispatcher looks now instead of after its idle wait."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def on_batch_stored(self, records: Sequence[SourceRecord], result: StoreResult) -> None:
        if result.inserted:
            self._dispatcher.wake()


class Worker:
    """One bridge process. Build, then ``await run(stop)``."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        consume: bool = True,
        metrics: Metrics | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.consume = consume
        self.metrics = metrics if metrics is not None else Metrics()
        self._keys = ApiKeySource(config, env)
        self._clock = clock
        self._server: HttpServer | None = None
        self._source_task: asyncio.Task[Any] | None = None
        self._outbox: Outbox | None = None
        self._dispatcher: Dispatcher | None = None
        self._poller: Poller | None = None
        self._gate: AuthGate | None = None
        self.started = asyncio.Event()  # set once the HTTP server listens
        self.summary: RunSummary | None = None

    @property
    def port(self) -> int:
        """The HTTP server's port (after :attr:`started`)."""
        if self._server is None:
            raise RuntimeError("the worker has not started")
        return self._server.port

    def wake(self) -> None:
        """Deliveries were stored by something else than this worker's source (an embedding
        application, a benchmark's feeder): fire them now, not after the idle wait."""
        if self._dispatcher is not None:
            self._dispatcher.wake()

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> RunSummary:
        """Run until ``stop`` is set (or, with ``once``, until everything has ended)."""
        began = self._clock()
        cfg = self.config
        outbox = Outbox.open(cfg.outbox.path, synchronous=cfg.outbox.synchronous)
        self._outbox = outbox
        try:
            async with build_http_client(cfg.brew) as http:
                budgets = RateBudgets(cfg.brew.rate_limits, self.metrics)
                client = BrewClient(
                    http,
                    api_key=self._keys,
                    brand_id=cfg.brew.brand_id,
                    budgets=budgets,
                    metrics=self.metrics,
                    api_shape=cfg.brew.api_shape,
                )
                await self._run_parts(client, outbox, stop, once=once)
        finally:
            self._refresh_stats()
            outbox.close()
        self.summary = RunSummary.from_metrics(self.metrics, self._clock() - began)
        return self.summary

    async def _run_parts(
        self, client: BrewClient, outbox: Outbox, stop: asyncio.Event, *, once: bool
    ) -> None:
        cfg = self.config
        gate = AuthGate(Circuit(probe_interval=cfg.dispatcher.auth_probe_seconds), self.metrics)
        self._gate = gate
        results, dlq, producer = await self._publishers(outbox)
        dispatcher = Dispatcher(
            outbox,
            client,
            config=cfg.dispatcher,
            retry=cfg.brew.retry,
            metrics=self.metrics,
            gate=gate,
            clock=self._clock,
            drain_timeout=cfg.brew.timeout_seconds + 5.0,
        )
        poller = Poller(
            outbox,
            client,
            config=cfg.poller,
            read_limit=cfg.brew.rate_limits.run_read,
            metrics=self.metrics,
            gate=gate,
            results=results,
            clock=self._clock,
        )
        self._dispatcher, self._poller = dispatcher, poller
        source = self._source(outbox, dispatcher) if self.consume else None

        stop_source, stop_fire, stop_poll = asyncio.Event(), asyncio.Event(), asyncio.Event()
        server = HttpServer(
            build_app(self.metrics, self._checks(source)), cfg.server.host, cfg.server.port
        )
        await server.start()
        self._server = server
        tasks: dict[str, asyncio.Task[Any]] = {}

        def spawn(name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
            task = asyncio.create_task(coro, name=name)
            tasks[name] = task
            return task

        try:
            if source is not None:
                self._source_task = spawn(
                    "source", source.drain() if once else source.run(stop_source)
                )
            spawn("dispatcher", dispatcher.run(stop_fire))
            spawn("poller", poller.run(stop_poll))
            spawn("stats", self._stats_loop(stop_poll))
            if dlq is not None:
                spawn("dlq", dlq.run(stop_poll))
            self.started.set()
            log.info(
                "brew-bridge running",
                port=server.port,
                consume=source is not None,
                once=once,
                outbox=str(outbox.path),
            )
            await self._until_stopped(stop, tasks, once=once)
        finally:
            # Ordered: no new events, then no new fires, then no more reads.
            stop_source.set()
            await self._settle(tasks.get("source"), "source")
            stop_fire.set()
            await self._settle(tasks.get("dispatcher"), "dispatcher")
            stop_poll.set()
            for name in ("poller", "stats", "dlq"):
                await self._settle(tasks.get(name), name)
            if dlq is not None:
                await self._flush_dead_letters(dlq)
            if results is not None:
                await results.flush()
            if producer is not None:
                await producer.stop()
            await server.stop()
            log.info("brew-bridge stopped")

    async def _until_stopped(
        self, stop: asyncio.Event, tasks: dict[str, asyncio.Task[Any]], *, once: bool
    ) -> None:
        """Wait for ``stop``, for ``once`` to be done, or for a part to die (then re-raise)."""
        stop_waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                watched = {t for n, t in tasks.items() if not (once and n == "source")}
                done, _ = await asyncio.wait(
                    {stop_waiter, *watched},
                    timeout=_DONE_CHECK_INTERVAL if once else None,
                    return_when="FIRST_COMPLETED",
                )
                for task in done - {stop_waiter}:
                    task.result()  # a part that raised stops the worker with its error
                    raise BridgeError(f"{task.get_name()} stopped unexpectedly")
                source = tasks.get("source")
                if source is not None and source.done():
                    source.result()
                if once and await self._all_done(source):
                    log.info("--once: caught up, every delivery fired or dead, every run ended")
                    return
        finally:
            stop_waiter.cancel()

    async def _all_done(self, source: asyncio.Task[Any] | None) -> bool:
        if source is not None and not source.done():
            return False
        assert self._outbox is not None
        assert self._dispatcher is not None
        if self._dispatcher.in_flight:
            return False
        stats = await asyncio.to_thread(self._outbox.stats, self._clock())
        return stats.backlog == 0 and stats.live_runs == 0

    async def _settle(self, task: asyncio.Task[Any] | None, name: str) -> None:
        if task is None:
            return
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("part failed while stopping", part=name)

    @staticmethod
    async def _flush_dead_letters(dlq: Any) -> None:
        """Publish the dead letters written since the publisher's last pass (bounded)."""
        for _ in range(100):
            try:
                if not await dlq.publish_pending():
                    return
            except Exception as exc:  # the next start publishes them; nothing is lost
                log.warning("dead letters left for the DLQ topic at stop", error=str(exc))
                return

    def _source(self, outbox: Outbox, dispatcher: Dispatcher) -> KafkaSource:
        from brew_bridge.mapping.routing import compile_routes
        from brew_bridge.sources.kafka.source import build_kafka_source

        routes = compile_routes(self.config)
        return build_kafka_source(
            self.config, routes, outbox, self.metrics, observer=_WakeDispatcher(dispatcher)
        )

    async def _publishers(self, outbox: Outbox) -> tuple[Any, Any, Any]:
        """The result-topic and DLQ-topic publishers, when configured and Kafka is a source."""
        kafka = self.config.kafka
        if not self.consume or (kafka.result_topic is None and kafka.dlq_topic is None):
            return None, None, None
        from brew_bridge.sinks.kafka import DeadLetterPublisher, ResultPublisher, start_producer

        producer = await start_producer(kafka)
        results = (
            ResultPublisher(producer, kafka.result_topic, metrics=self.metrics)
            if kafka.result_topic is not None
            else None
        )
        dlq = (
            DeadLetterPublisher(outbox, producer, kafka.dlq_topic, metrics=self.metrics)
            if kafka.dlq_topic is not None
            else None
        )
        return results, dlq, producer

    def _checks(self, source: KafkaSource | None) -> dict[str, Callable[[], str | None]]:
        def consumer() -> str | None:
            if source is None:
                return None  # not consuming on purpose (--no-consume)
            task = self._source_task
            if task is None or task.done():
                return "the Kafka consumer is not running"
            return None

        def outbox() -> str | None:
            errors = [
                e
                for e in (
                    self._dispatcher.outbox_error if self._dispatcher else None,
                    self._poller.outbox_error if self._poller else None,
                )
                if e
            ]
            return "; ".join(errors) if errors else None

        def circuit() -> str | None:
            return self._gate.reason() if self._gate is not None else "starting"

        return {"consumer": consumer, "outbox": outbox, "circuit": circuit}

    async def _stats_loop(self, stop: asyncio.Event) -> None:
        pruned_at: float | None = None
        while not stop.is_set():
            await asyncio.to_thread(self._refresh_stats)
            if pruned_at is None or time.monotonic() - pruned_at >= _PRUNE_INTERVAL:
                pruned_at = time.monotonic()
                await asyncio.to_thread(self._prune)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_STATS_INTERVAL)

    def _prune(self) -> None:
        """Delete finished work older than ``outbox.retention_seconds`` (0: keep all)."""
        retention = self.config.outbox.retention_seconds
        if self._outbox is None or retention <= 0:
            return
        try:
            result = self._outbox.prune(self._clock() - retention)
        except BridgeError as exc:
            log.warning("outbox prune failed", error=str(exc))
            return
        if result != PruneResult():
            log.info(
                "outbox pruned",
                deliveries=result.deliveries,
                runs=result.runs,
                dead_letters=result.dead_letters,
                records=result.records,
                retention_seconds=retention,
            )

    def _refresh_stats(self) -> None:
        """Outbox gauges: rows by state, oldest pending age, runs in flight."""
        if self._outbox is None:
            return
        try:
            stats = self._outbox.stats(self._clock())
        except BridgeError as exc:
            log.warning("outbox stats failed", error=str(exc))
            return
        for state, count in stats.deliveries.items():
            self.metrics.outbox_rows.labels(state=state).set(count)
        self.metrics.outbox_oldest_pending_age.set(stats.oldest_pending_age or 0.0)
        self.metrics.runs_in_flight.set(stats.live_runs)
